using LongSeqService.Trainer.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary>Small configs and helpers shared by the model tests.</summary>
internal static class ModelTestKit
{
    /// <summary>A very small decoder (head_dim 4, GQA 4:2) for finite differences.</summary>
    public static ModelConfig Micro(bool qwen) => new()
    {
        ModelType = qwen ? "qwen2" : "llama",
        Architectures = [qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
        VocabSize = 32,
        HiddenSize = 16,
        IntermediateSize = 24,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        RmsNormEps = 1e-6,
        RopeTheta = qwen ? 1000000.0 : 10000.0,
        TieWordEmbeddings = qwen,
        AttentionBias = qwen,
    };

    public static Dictionary<string, Parameter> Params(nn.Module m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter);

    /// <summary>Non-zero biases and norm weights (HF init sets them to 0 and 1, which would hide bugs).</summary>
    public static void Perturb(nn.Module m, long seed)
    {
        using var noGrad = no_grad();
        using var g = new Generator((ulong)seed, CPU);
        foreach (var (name, p) in m.named_parameters())
        {
            if (name.EndsWith(".bias")) p.copy_(empty(p.shape, dtype: ScalarType.Float64).normal_(0, 0.1, g));
            else if (name.EndsWith("norm.weight")) p.add_(empty(p.shape, dtype: ScalarType.Float64).normal_(0, 0.1, g));
        }
    }

    public static Tensor Ids(long batch, long t, long vocab, long seed)
    {
        using var g = new Generator((ulong)seed, CPU);
        return randint(0, vocab, [batch, t], dtype: ScalarType.Int64, generator: g);
    }

    public static Tensor Positions(long batch, long t, long offset = 0) =>
        arange(offset, offset + t, dtype: ScalarType.Int64).unsqueeze(0).expand(batch, t).contiguous();

    public static double MaxAbsDiff(Tensor a, Tensor b) =>
        (a.to_type(ScalarType.Float64) - b.to_type(ScalarType.Float64)).abs().max().item<double>();

    /// <summary>Same shape, dtype and every element equal.</summary>
    public static bool BitEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "lss-model-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}

/// <summary>Counts calls, to check that checkpointing re-runs the attention on the same path.</summary>
internal sealed class CountingAttention(IAttention inner) : IAttention
{
    public int Calls;
    public Tensor Forward(Tensor q, Tensor k, Tensor v)
    {
        Interlocked.Increment(ref Calls);
        return inner.Forward(q, k, v);
    }
}
