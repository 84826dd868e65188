using TorchSharp;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Causal attention over a sequence split across the ranks of <paramref name="group"/> (ring attention;
/// zigzag by default, the ring-flash-attention algorithm). Each rank passes its K/V shard around the
/// ring; at step s it attends its queries to the K/V of rank (r − s) mod N and merges the block into a
/// running output with the log-sum-exp. Zigzag rules (rank r holds chunks r and 2N−1−r):
/// step 0: causal local attention; K/V from an earlier rank: all local queries against the first half
/// of its K/V (its chunk src; its chunk 2N−1−src lies in the future of all ours); K/V from a later rank:
/// only our second half (chunk 2N−1−r) against all of its K/V. Every rank does the same work.
/// Contiguous (rank r holds chunk r): earlier ranks fully, later ranks skipped (unbalanced).
/// Backward re-runs the same steps with the saved global output and lse; dQ accumulates locally while
/// dK/dV travel a second ring and arrive back at their owner after N steps.
/// </summary>
public sealed class RingAttention(ICollectives group, RingLayout layout = RingLayout.Zigzag, IAttentionKernel? kernel = null, AttentionTimer? timer = null)
    : IAttention
{
    private const int ForwardKvTag = 101, BackwardKvTag = 102, BackwardGradTag = 103;

    public ICollectives Group { get; } = group;

    public RingLayout Layout { get; } = layout;

    public int SequenceShards => Group.WorldSize;

    public IAttentionKernel Kernel { get; } = kernel ?? BlockAttention.Auto;

    public AttentionTimer Timer { get; } = timer ?? new AttentionTimer();

    /// <summary>q (B, Hq, Tl, D), k/v (B, Hkv, Tl, D): this rank's shard; returns (B, Hq, Tl, D).</summary>
    public Tensor Forward(Tensor q, Tensor k, Tensor v)
    {
        if (q.dim() != 4 || k.dim() != 4 || !k.shape.SequenceEqual(v.shape) || q.shape[2] != k.shape[2])
            throw new ArgumentException($"ring attention expects q (B, Hq, T, D) and k, v (B, Hkv, T, D); got q ({Shape(q)}), k ({Shape(k)}), v ({Shape(v)})");
        if (Layout == RingLayout.Zigzag && Group.WorldSize > 1 && q.shape[2] % 2 != 0)
            throw new ArgumentException($"zigzag ring attention needs an even number of local tokens (pad the sequence to a multiple of 2 × {Group.WorldSize}); got {q.shape[2]}");
        return RingAttentionFunction.apply(q, k, v, this)[0];
    }

    /// <summary>Which part of the local queries and of the held K/V a ring step covers.</summary>
    private enum Block { Causal, AllQueriesFirstHalfKv, SecondHalfQueriesAllKv, AllQueriesAllKv, Skip }

    private Block StepBlock(int step)
    {
        if (step == 0) return Block.Causal;
        var (n, r) = (Group.WorldSize, Group.Rank);
        var src = (r - step + n) % n;
        return (Layout, src < r) switch
        {
            (RingLayout.Zigzag, true) => Block.AllQueriesFirstHalfKv,
            (RingLayout.Zigzag, false) => Block.SecondHalfQueriesAllKv,
            (RingLayout.Contiguous, true) => Block.AllQueriesAllKv,
            _ => Block.Skip,
        };
    }

    internal (Tensor Out, Tensor Lse) RingForward(Tensor q, Tensor k, Tensor v)
    {
        using var scope = torch.NewDisposeScope();
        var n = Group.WorldSize;
        var acc = BlockAttention.AccumulationType(q.dtype);
        var half = q.shape[2] / 2;
        var kv = new RingChannel(Group, Timer, ForwardKvTag);
        Tensor output = null!, lse = null!; // (B, H, Tl, D) and (B, H, Tl, 1), float32/float64
        var (curK, curV) = (k, v);
        for (var step = 0; step < n; step++)
        {
            using var stepScope = torch.NewDisposeScope();
            if (step + 1 < n) kv.SendToNext(curK, curV); // in flight while we compute
            switch (StepBlock(step))
            {
                case Block.Causal:
                    var (o0, l0) = Kernel.Forward(q, curK, curV, causal: true);
                    (output, lse) = stepScope.MoveToOuter(o0.to(acc), l0.to(acc).unsqueeze(-1));
                    break;
                case Block.AllQueriesFirstHalfKv:
                    var (o1, l1) = Kernel.Forward(q, curK.narrow(2, 0, half), curV.narrow(2, 0, half), causal: false);
                    LseMerge.Merge(output, lse, o1, l1);
                    break;
                case Block.SecondHalfQueriesAllKv:
                    var (o2, l2) = Kernel.Forward(q.narrow(2, half, half), curK, curV, causal: false);
                    LseMerge.Merge(output.narrow(2, half, half), lse.narrow(2, half, half), o2, l2);
                    break;
                case Block.AllQueriesAllKv:
                    var (o3, l3) = Kernel.Forward(q, curK, curV, causal: false);
                    LseMerge.Merge(output, lse, o3, l3);
                    break;
            }
            if (step + 1 < n)
            {
                var (nextK, nextV) = kv.ReceiveFromPrevious();
                if (step > 0) { curK.Dispose(); curV.Dispose(); } // a received shard we are done with
                (curK, curV) = stepScope.MoveToOuter(nextK, nextV);
            }
        }
        return scope.MoveToOuter(output.to(q.dtype), lse.squeeze(-1));
    }

    internal (Tensor Dq, Tensor Dk, Tensor Dv) RingBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse)
    {
        using var scope = torch.NewDisposeScope();
        var n = Group.WorldSize;
        var acc = BlockAttention.AccumulationType(q.dtype);
        var half = q.shape[2] / 2;
        var kv = new RingChannel(Group, Timer, BackwardKvTag);
        var grads = new RingChannel(Group, Timer, BackwardGradTag);
        dout = dout.contiguous();
        var dq = torch.zeros(q.shape, dtype: acc);
        // The second half of the local queries, for blocks from later ranks (zigzag).
        var (dout2, q2, out2, lse2) = (dout.narrow(2, half, half), q.narrow(2, half, half),
            output.narrow(2, half, half), lse.narrow(2, half, half).contiguous());
        Tensor dk = null!, dv = null!; // gradients of the K/V shard currently held, travelling with it
        var (curK, curV) = (k, v);
        for (var step = 0; step < n; step++)
        {
            using var stepScope = torch.NewDisposeScope();
            if (step + 1 < n) kv.SendToNext(curK, curV);
            var block = StepBlock(step);
            Tensor? bdk = null, bdv = null;
            switch (block)
            {
                case Block.Causal:
                    (var bdq0, bdk, bdv) = Kernel.Backward(dout, q, curK, curV, output, lse, causal: true);
                    dq.add_(bdq0);
                    break;
                case Block.AllQueriesFirstHalfKv:
                    (var bdq1, bdk, bdv) = Kernel.Backward(dout, q, curK.narrow(2, 0, half), curV.narrow(2, 0, half), output, lse, causal: false);
                    dq.add_(bdq1);
                    break;
                case Block.SecondHalfQueriesAllKv:
                    (var bdq2, bdk, bdv) = Kernel.Backward(dout2, q2, curK, curV, out2, lse2, causal: false);
                    dq.narrow(2, half, half).add_(bdq2);
                    break;
                case Block.AllQueriesAllKv:
                    (var bdq3, bdk, bdv) = Kernel.Backward(dout, q, curK, curV, output, lse, causal: false);
                    dq.add_(bdq3);
                    break;
            }
            if (step == 0)
            {
                (dk, dv) = stepScope.MoveToOuter(bdk!.to(acc, copy: true), bdv!.to(acc, copy: true));
            }
            else
            {
                // dK/dV of this shard accumulated by the ranks that held it before us.
                var (heldDk, heldDv) = grads.ReceiveFromPrevious();
                (dk, dv) = stepScope.MoveToOuter(heldDk, heldDv);
                if (block == Block.AllQueriesFirstHalfKv)
                {
                    dk.narrow(2, 0, half).add_(bdk!);
                    dv.narrow(2, 0, half).add_(bdv!);
                }
                else if (block != Block.Skip)
                {
                    dk.add_(bdk!);
                    dv.add_(bdv!);
                }
            }
            if (step + 1 < n)
            {
                var (nextK, nextV) = kv.ReceiveFromPrevious();
                if (step > 0) { curK.Dispose(); curV.Dispose(); }
                (curK, curV) = stepScope.MoveToOuter(nextK, nextV);
            }
            if (n > 1)
            {
                grads.SendToNext(dk, dv);
                dk.Dispose();
                dv.Dispose();
            }
        }
        if (n > 1) (dk, dv) = grads.ReceiveFromPrevious(); // our own shard's gradients, back after a full turn
        return scope.MoveToOuter(dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype));
    }

    private static string Shape(Tensor t) => string.Join(", ", t.shape);
}

/// <summary>The autograd node of <see cref="RingAttention"/>: forward and backward call the ring loops.</summary>
internal sealed class RingAttentionFunction : autograd.MultiTensorFunction<RingAttentionFunction>
{
    public override string Name => nameof(RingAttentionFunction);

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (q, k, v, ring) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (RingAttention)vars[3]);
        var (output, lse) = ring.Timer.TimeForward(() => ring.RingForward(q, k, v));
        ctx.save_for_backward([q, k, v, output.detach(), lse]);
        ctx.save_data("ring", ring);
        return [output];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var ring = (RingAttention)ctx.get_data("ring");
        var saved = ctx.get_saved_variables();
        return AutogradFailure.Guard(ring.Group, saved[0], 4, () =>
        {
            var (dq, dk, dv) = ring.Timer.TimeBackward(() =>
                ring.RingBackward(gradOutputs[0], saved[0], saved[1], saved[2], saved[3], saved[4]));
            return [dq, dk, dv, null!];
        });
    }
}
