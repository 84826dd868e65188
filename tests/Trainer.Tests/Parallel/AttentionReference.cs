using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Parallel;

/// <summary>Full causal attention on the whole sequence, written naively and differentiated by autograd.</summary>
internal static class AttentionReference
{
    /// <summary>softmax(q·kᵀ/√D + causal mask)·v with K/V heads shared by consecutive query heads.</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, bool causal = true)
    {
        var n = q.shape[1] / k.shape[1];
        k = k.repeat_interleave(n, dim: 1);
        v = v.repeat_interleave(n, dim: 1);
        var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(q.shape[^1]);
        if (causal)
        {
            var mask = torch.ones(q.shape[2], k.shape[2], dtype: ScalarType.Bool).triu(1);
            scores = scores.masked_fill(mask, double.NegativeInfinity);
        }
        return scores.softmax(-1).matmul(v);
    }

    /// <summary>Output and the gradients of sum(out ∘ dout) with respect to q, k, v.</summary>
    public static (Tensor Out, Tensor Dq, Tensor Dk, Tensor Dv) WithGrads(Func<Tensor, Tensor, Tensor, Tensor> attention, Tensor q, Tensor k, Tensor v, Tensor dout)
    {
        var (ql, kl, vl) = (q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_(), v.detach().clone().requires_grad_());
        var o = attention(ql, kl, vl);
        (o * dout).sum().backward();
        return (o.detach(), ql.grad!, kl.grad!, vl.grad!);
    }

    /// <summary>Runs the plan's attention on every rank's shard, backpropagates the shard of dout, and gathers.</summary>
    public static (Tensor Out, Tensor Dq, Tensor Dk, Tensor Dv) RunSharded(SequenceParallelPlan plan, Tensor q, Tensor k, Tensor v, Tensor dout, IAttentionKernel? kernel = null)
    {
        var shards = InProcessWorld.Run(plan.Size, comm =>
        {
            var attention = plan.CreateAttention(comm, kernel);
            var (ql, kl, vl) = (plan.Shard(q, comm.Rank, 2).requires_grad_(), plan.Shard(k, comm.Rank, 2).requires_grad_(), plan.Shard(v, comm.Rank, 2).requires_grad_());
            var o = attention.Forward(ql, kl, vl); // (B, Hq, Tl, D)
            (o * plan.Shard(dout, comm.Rank, 2)).sum().backward();
            return (Out: o.detach(), Dq: ql.grad!, Dk: kl.grad!, Dv: vl.grad!);
        }, TimeSpan.FromSeconds(60));
        return (plan.Unshard(shards.Select(s => s.Out).ToList(), 2), plan.Unshard(shards.Select(s => s.Dq).ToList(), 2),
                plan.Unshard(shards.Select(s => s.Dk).ToList(), 2), plan.Unshard(shards.Select(s => s.Dv).ToList(), 2));
    }

    /// <summary>Inputs (B, H, T, D) from a fixed seed.</summary>
    public static (Tensor Q, Tensor K, Tensor V, Tensor Dout) Inputs(long b, long hq, long hkv, long t, long d, ScalarType dtype, long seed = 1)
    {
        var g = new Generator((ulong)seed);
        return (torch.randn(b, hq, t, d, dtype: dtype, generator: g), torch.randn(b, hkv, t, d, dtype: dtype, generator: g),
                torch.randn(b, hkv, t, d, dtype: dtype, generator: g), torch.randn(b, hq, t, d, dtype: dtype, generator: g));
    }

    /// <summary>‖actual − expected‖∞ ≤ tolerance · ‖expected‖∞.</summary>
    public static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var scale = Math.Max(expected.abs().max().to(ScalarType.Float64).item<double>(), 1e-300);
        var error = (actual.to(ScalarType.Float64) - expected.to(ScalarType.Float64)).abs().max().item<double>() / scale;
        Assert.True(error <= tolerance, $"{what}: relative error {error:E3} > {tolerance:E1}");
    }
}

internal static class TensorAssert
{
    /// <summary>Same shape and bit-for-bit equal values.</summary>
    public static bool Identical(this Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();
}
