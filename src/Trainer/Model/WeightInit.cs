using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Hugging Face's initialisation for Llama/Qwen2 (<c>initializer_range</c> 0.02): linear and embedding
/// weights ~ N(0, std), biases 0, norm weights 1. Values are drawn in float32 on the CPU from a seeded
/// generator, in parameter order, then cast — so a seed gives the same model in every dtype, on every
/// device and on every rank.
/// </summary>
public static class WeightInit
{
    public static void HfStyle(nn.Module model, long seed, double std = 0.02)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else p.copy_(empty(p.shape, dtype: ScalarType.Float32).normal_(0, std, generator));
        }
    }
}
