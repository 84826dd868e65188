using System.Diagnostics;
using LongSeqService.Shared.Models;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// Model FLOPs of a training step and this machine's matmul peak, for the model-FLOP utilisation (MFU)
/// that <c>trainer bench</c> reports: model FLOPs only (PaLM's count: 6 per matmul weight per token plus
/// causal attention), so gradient checkpointing's recomputation is work done but not counted.
/// </summary>
public static class ModelFlops
{
    /// <summary>The config of a builtin, a <c>shape:NAME</c> or a local HF directory.</summary>
    public static ModelConfig Config(string model) =>
        BuiltinModels.TryGet(model, out var builtin) ? builtin
        : ModelShapes.IsShape(model) ? ModelFactory.ShapeConfig(model)
        : ModelLoader.ReadConfig(model);

    /// <summary>Training FLOPs per token at sequence length <paramref name="t"/>: 6·(matmul weights, the LM head
    /// included, the embedding lookup not) + 6·layers·T·(heads·head_dim) for causal attention (QKᵀ and AV,
    /// forward 2·2·(T/2)·d per token, backward twice that).</summary>
    public static double PerToken(ModelConfig c, long t)
    {
        long h = c.HiddenSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.KeyValueHeads * c.HeadDim;
        long perLayer = h * q + 2 * h * kv + q * h + 3 * h * c.IntermediateSize;
        long matmulWeights = c.NumHiddenLayers * perLayer + (long)c.VocabSize * h;
        return 6.0 * matmulWeights + 6.0 * c.NumHiddenLayers * t * q;
    }

    /// <summary>Measured float32 (or the given dtype) GFLOP/s of a 2048² matmul on <paramref name="threads"/> threads.</summary>
    public static double MatmulPeakGflops(int threads, ScalarType dtype)
    {
        int previous = get_num_threads();
        set_num_threads(threads);
        try
        {
            using var scope = NewDisposeScope();
            const int n = 2048, reps = 5;
            var a = randn(n, n).to(dtype);
            var b = randn(n, n).to(dtype);
            for (int i = 0; i < 2; i++) a.mm(b).Dispose();                                // warm-up
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) a.mm(b).Dispose();
            return 2.0 * n * n * n * reps / watch.Elapsed.TotalSeconds / 1e9;
        }
        finally
        {
            set_num_threads(previous);
        }
    }
}
