using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Reference causal attention written out: softmax(q·kᵀ/√D + mask)·v with an explicit upper-triangular
/// −∞ mask. Slow (materialises T×T) — for tests and for checking the fused kernels.
/// Scores and softmax run in float32 for half-precision inputs, float64 for float64.
/// </summary>
public sealed class MathAttention : IAttention
{
    public Tensor Forward(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        var (kr, vr) = GroupedQuery.RepeatKv(q, k, v);
        var t = q.shape[2];
        var d = q.shape[3];
        var computeType = q.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var scores = q.to_type(computeType).matmul(kr.to_type(computeType).transpose(-2, -1)) / Math.Sqrt(d); // (B, Hq, T, T)
        var future = ones(t, t, dtype: ScalarType.Bool, device: q.device).triu(1);         // key after query
        var probs = scores.masked_fill(future, double.NegativeInfinity).softmax(-1);
        var output = probs.matmul(vr.to_type(computeType)).to_type(q.dtype);               // (B, Hq, T, D)
        return output.MoveToOuterDisposeScope();
    }
}
