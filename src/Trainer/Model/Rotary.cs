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
    /// <summary>
    /// cos and sin tables for the given positions: each (B, 1, T, D), in <paramref name="dtype"/>,
    /// ready to broadcast over heads. Angles are computed in float32 like HF (float64 for float64
    /// models, so finite-difference tests keep full precision), then cast.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, int headDim, double theta, ScalarType dtype)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"RoPE needs an even head_dim, got {headDim}.");
        using var scope = NewDisposeScope();
        var angleType = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var device = positionIds.device;
        // inv_freq[i] = θ^(−2i/D), i = 0 .. D/2−1, exactly as HF builds it (int arange, then float).
        var exponents = arange(0, headDim, 2, dtype: ScalarType.Int64, device: device).to_type(angleType) / headDim;
        var invFreq = pow(theta, exponents).reciprocal();                                  // (D/2)
        var freqs = positionIds.to_type(angleType).unsqueeze(-1) * invFreq;                // (B, T, D/2)
        var emb = cat([freqs, freqs], dim: -1).unsqueeze(1);                               // (B, 1, T, D)
        var cos = emb.cos().to_type(dtype);
        var sin = emb.sin().to_type(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

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
