using LongSeqService.Shared.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Rotary position embedding (RoPE) in Hugging Face's "rotate half" layout: the head dimension is
/// split in two halves that rotate as (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin).
/// Angles come from explicit <c>position_ids</c>, never from an arange over the tensor: under
/// sequence parallelism a rank holds non-contiguous chunks (zigzag) and must rotate each token by its
/// global position.
/// </summary>
public static class Rotary
{
    /// <summary>Plain RoPE tables (no rope_scaling), see the overload below.</summary>
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, int headDim, double theta, ScalarType dtype) =>
        CosSin(positionIds, RopeScaling.InverseFrequencies(null, EvenDim(headDim), theta, 0, 0), 1.0, dtype);

    /// <summary>
    /// Tables for a model's RoPE: its rope_theta and rope_scaling (<see cref="RopeScaling"/>, HF's
    /// definitions). <paramref name="seqLen"/> is the length of the whole sequence (max position + 1);
    /// only dynamic NTK reads it, and under sequence parallelism it must be the global length, the
    /// same on every rank, or the ranks would rotate by different frequencies.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, ModelConfig cfg, long seqLen, ScalarType dtype)
    {
        var rope = cfg.Rope;
        var invFreq = RopeScaling.InverseFrequencies(rope, EvenDim(cfg.HeadDim), cfg.RopeTheta, cfg.MaxPositionEmbeddings, seqLen);
        return CosSin(positionIds, invFreq, RopeScaling.AttentionScaling(rope), dtype);
    }

    /// <summary>
    /// cos and sin tables for the given positions: each (B, 1, T, D), in <paramref name="dtype"/>,
    /// ready to broadcast over heads, both multiplied by <paramref name="attentionScaling"/> (yarn's
    /// mscale, as HF does). Angles are computed in float32 like HF (float64 for float64 models, so
    /// finite-difference tests keep full precision), then cast.
    /// </summary>
    private static (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, double[] invFreqValues, double attentionScaling, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var angleType = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var device = positionIds.device;
        var invFreq = tensor(invFreqValues, device: device).to_type(angleType);                 // (D/2)
        var freqs = positionIds.to_type(angleType).unsqueeze(-1) * invFreq;                // (B, T, D/2)
        var emb = cat([freqs, freqs], dim: -1).unsqueeze(1);                               // (B, 1, T, D)
        var cos = emb.cos();
        var sin = emb.sin();
        if (attentionScaling != 1.0)
        {
            using Scalar scale = attentionScaling;   // held across the native call (docs/platform.md)
            cos = cos * scale;
            sin = sin * scale;
        }
        return (cos.to_type(dtype).MoveToOuterDisposeScope(), sin.to_type(dtype).MoveToOuterDisposeScope());
    }

    private static int EvenDim(int headDim) =>
        headDim > 0 && headDim % 2 == 0 ? headDim : throw new ArgumentException($"RoPE needs an even head_dim, got {headDim}.");

    /// <summary>x (B, H, T, D) rotated by the tables from <see cref="CosSin"/>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([x2.neg(), x1], dim: -1);                                        // rotate_half(x)
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}
