using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Block attention written out with matmul and logsumexp, computed in the accumulation dtype (float64
/// stays float64, so it is exact enough to be the reference in tests). Materialises the (Tq, Tk) score
/// matrix: the fallback where the fused kernel does not run.
/// </summary>
public sealed class MathAttentionKernel : IAttentionKernel
{
    public static MathAttentionKernel Instance { get; } = new();

    public string Name => "math";

    public bool Supports(Tensor q) => true;

    public (Tensor Out, Tensor Lse) Forward(Tensor q, Tensor k, Tensor v, bool causal)
    {
        using var scope = torch.NewDisposeScope();
        var n = GroupedQuery.Groups(q, k);
        var acc = BlockAttention.AccumulationType(q.dtype);
        var (qf, kf, vf) = (q.to(acc), GroupedQuery.Repeat(k, n).to(acc), GroupedQuery.Repeat(v, n).to(acc));
        var scores = Scores(qf, kf, causal);                   // (B, H, Tq, Tk)
        var lse = scores.logsumexp(-1);                        // (B, H, Tq)
        var p = (scores - lse.unsqueeze(-1)).exp_();           // softmax, masked entries exp(-inf) = 0
        var o = p.matmul(vf).to(q.dtype);                      // (B, H, Tq, D)
        return scope.MoveToOuter(o, lse);
    }

    public (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal)
    {
        using var scope = torch.NewDisposeScope();
        var n = GroupedQuery.Groups(q, k);
        var acc = BlockAttention.AccumulationType(q.dtype);
        var (qf, kf, vf) = (q.to(acc), GroupedQuery.Repeat(k, n).to(acc), GroupedQuery.Repeat(v, n).to(acc));
        var (dof, of) = (dout.to(acc), output.to(acc));
        var scale = 1.0 / Math.Sqrt(q.shape[^1]);
        var p = (Scores(qf, kf, causal) - lse.to(acc).unsqueeze(-1)).exp_(); // this block's share of the global softmax
        var dv = p.transpose(-2, -1).matmul(dof);                           // (B, H, Tk, D)
        var dp = dof.matmul(vf.transpose(-2, -1));                          // (B, H, Tq, Tk)
        var delta = (dof * of).sum(-1, keepdim: true);                      // (B, H, Tq, 1) = rowsum(P ∘ dP) over all blocks
        var ds = p * (dp - delta);
        var dq = ds.matmul(kf) * scale;                                     // (B, H, Tq, D)
        var dk = ds.transpose(-2, -1).matmul(qf) * scale;                   // (B, H, Tk, D)
        return scope.MoveToOuter(
            dq.to(q.dtype),
            GroupedQuery.SumGroups(dk, n).to(k.dtype),
            GroupedQuery.SumGroups(dv, n).to(v.dtype));
    }

    private static Tensor Scores(Tensor q, Tensor k, bool causal)
    {
        var scores = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(q.shape[^1])); // (B, H, Tq, Tk)
        if (!causal) return scores;
        var (tq, tk) = (q.shape[2], k.shape[2]);
        if (tq != tk) throw new ArgumentException($"a causal block needs as many queries as keys (got {tq} and {tk})");
        using var future = torch.ones(tq, tk, dtype: ScalarType.Bool, device: q.device).triu(1); // key j > query i
        return scores.masked_fill_(future, double.NegativeInfinity);
    }
}
