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

    /// <summary>
    /// Packed sequences: the document ids of every ring member's shard (index = rank in the group),
    /// gathered once per forward from <see cref="PackedDocuments.Current"/>; null when unpacked.
    /// </summary>
    internal DocumentIds[]? GatherDocuments(long localLength)
    {
        if (PackedDocuments.Current is not { } mine) return null;
        if (mine.shape[1] != localLength)
            throw new ArgumentException($"packed document ids cover {mine.shape[1]} tokens but this shard has {localLength}");
        using var scope = torch.NewDisposeScope();
        var all = DocumentIds.From(Group.WorldSize == 1 ? mine : Group.AllGather(mine, 1)); // (B, N·Tl), rank order
        var tl = (int)localLength;
        return Enumerable.Range(0, Group.WorldSize).Select(r => all.Narrow(r * tl, tl)).ToArray();
    }

    /// <summary>One block through the kernel; restricted to same-document pairs when the batch is packed.</summary>
    private (Tensor Out, Tensor Lse) Attend(Tensor q, Tensor k, Tensor v, bool causal, DocumentIds? qDocs, DocumentIds? kDocs) =>
        qDocs is null ? Kernel.Forward(q, k, v, causal) : VarlenBlock.Forward(Kernel, q, k, v, causal, qDocs, kDocs!);

    private (Tensor Dq, Tensor Dk, Tensor Dv) AttendBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal,
        DocumentIds? qDocs, DocumentIds? kDocs) =>
        qDocs is null ? Kernel.Backward(dout, q, k, v, output, lse, causal) : VarlenBlock.Backward(Kernel, dout, q, k, v, output, lse, causal, qDocs, kDocs!);

    /// <summary>The query and key document ids of a ring step's block (null when unpacked).</summary>
    private (DocumentIds? Q, DocumentIds? K) BlockDocuments(DocumentIds[]? docs, int step, Block block, int half)
    {
        if (docs is null) return (null, null);
        var (mine, src) = (docs[Group.Rank], docs[(Group.Rank - step + Group.WorldSize) % Group.WorldSize]);
        return block switch
        {
            Block.AllQueriesFirstHalfKv => (mine, src.Narrow(0, half)),
            Block.SecondHalfQueriesAllKv => (mine.Narrow(half, half), src),
            _ => (mine, src),
        };
    }

    internal (Tensor Out, Tensor Lse) RingForward(Tensor q, Tensor k, Tensor v, DocumentIds[]? docs = null)
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
            var stepBlock = StepBlock(step);
            var (qd, kd) = BlockDocuments(docs, step, stepBlock, (int)half);
            switch (stepBlock)
            {
                case Block.Causal:
                    var (o0, l0) = Attend(q, curK, curV, true, qd, kd);
                    (output, lse) = stepScope.MoveToOuter(o0.to(acc), l0.to(acc).unsqueeze(-1));
                    break;
                case Block.AllQueriesFirstHalfKv:
                    var (o1, l1) = Attend(q, curK.narrow(2, 0, half), curV.narrow(2, 0, half), false, qd, kd);
                    LseMerge.Merge(output, lse, o1, l1);
                    break;
                case Block.SecondHalfQueriesAllKv:
                    var (o2, l2) = Attend(q.narrow(2, half, half), curK, curV, false, qd, kd);
                    LseMerge.Merge(output.narrow(2, half, half), lse.narrow(2, half, half), o2, l2);
                    break;
                case Block.AllQueriesAllKv:
                    var (o3, l3) = Attend(q, curK, curV, false, qd, kd);
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

    internal (Tensor Dq, Tensor Dk, Tensor Dv) RingBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, DocumentIds[]? docs = null)
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
            var (qd, kd) = BlockDocuments(docs, step, block, (int)half);
            Tensor? bdk = null, bdv = null;
            switch (block)
            {
                case Block.Causal:
                    (var bdq0, bdk, bdv) = AttendBackward(dout, q, curK, curV, output, lse, true, qd, kd);
                    dq.add_(bdq0);
                    break;
                case Block.AllQueriesFirstHalfKv:
                    (var bdq1, bdk, bdv) = AttendBackward(dout, q, curK.narrow(2, 0, half), curV.narrow(2, 0, half), output, lse, false, qd, kd);
                    dq.add_(bdq1);
                    break;
                case Block.SecondHalfQueriesAllKv:
                    (var bdq2, bdk, bdv) = AttendBackward(dout2, q2, curK, curV, out2, lse2, false, qd, kd);
                    dq.narrow(2, half, half).add_(bdq2);
                    break;
                case Block.AllQueriesAllKv:
                    (var bdq3, bdk, bdv) = AttendBackward(dout, q, curK, curV, output, lse, false, qd, kd);
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
        var docs = ring.GatherDocuments(q.shape[2]);
        var (output, lse) = ring.Timer.TimeForward(() => ring.RingForward(q, k, v, docs));
        ctx.save_for_backward([q, k, v, output.detach(), lse]);
        ctx.save_data("ring", ring);
        ctx.save_data("docs", docs!);
        return [output];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var ring = (RingAttention)ctx.get_data("ring");
        var docs = ctx.get_data("docs") as DocumentIds[];
        var saved = ctx.get_saved_variables();
        return AutogradFailure.Guard(ring.Group, saved[0], 4, () =>
        {
            var (dq, dk, dv) = ring.Timer.TimeBackward(() =>
                ring.RingBackward(gradOutputs[0], saved[0], saved[1], saved[2], saved[3], saved[4], docs));
            return [dq, dk, dv, null!];
        });
    }
}
