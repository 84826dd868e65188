using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static LongSeqService.Trainer.Tests.Parallel.AttentionReference;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Parallel;

/// <summary>
/// Packed sequences (several documents in one row) under every SP mode against block-diagonal causal
/// attention written out naively: a query sees only earlier keys of its own document.
/// </summary>
public class PackedAttentionTests
{
    /// <summary>Document lengths per row, 24 tokens: boundaries inside zigzag chunks and on chunk edges (24 / 2N = 3, 4, 6, 12).</summary>
    private static readonly int[][] Layouts =
    [
        [5, 7, 1, 11],      // boundaries inside chunks, a one-token document
        [6, 6, 12],         // on chunk edges for N = 1, 2 and 3 (chunks of 12, 6, 4)
        [24],               // one document: plain causal attention
        [3, 3, 3, 3, 3, 9], // many short documents (edges of the N = 4 chunks of 3)
    ];

    public static TheoryData<string, int, int> Cases()
    {
        var data = new TheoryData<string, int, int>();
        foreach (var mode in new[] { "zigzag-ring", "ring", "ulysses", "hybrid" })
            foreach (var n in new[] { 1, 2, 3, 4 })
                if (mode != "ulysses" || 8 % n == 0)
                    for (var layout = 0; layout < Layouts.Length; layout++)
                        data.Add(mode, n, layout);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PackedAttention_Float64_MatchesBlockDiagonalCausalAttention(string mode, int n, int layout)
    {
        var plan = SequenceParallelPlan.Create(mode, n, 8, 4);
        var (q, k, v, dout) = Inputs(2, 8, 4, 24, 8, ScalarType.Float64);
        var docs = DocumentRows(Layouts[layout], Layouts[(layout + 1) % Layouts.Length]); // two rows, different boundaries

        var expected = WithGrads((a, b, c) => BlockDiagonal(a, b, c, docs), q, k, v, dout);
        var actual = RunPacked(plan, q, k, v, dout, docs);

        AssertClose(expected.Out, actual.Out, 1e-10, "out");
        AssertClose(expected.Dq, actual.Dq, 1e-10, "dq");
        AssertClose(expected.Dk, actual.Dk, 1e-10, "dk");
        AssertClose(expected.Dv, actual.Dv, 1e-10, "dv");
    }

    [Theory]
    [InlineData("zigzag-ring", 2)]
    [InlineData("ring", 3)]
    [InlineData("ulysses", 2)]
    [InlineData("hybrid", 4)]
    public void PackedAttention_ChangingOneDocument_LeavesTheOthersUntouched(string mode, int n)
    {
        // Crossing a boundary would carry document 0's keys into document 1's outputs.
        var plan = SequenceParallelPlan.Create(mode, n, 8, 4, mode == "hybrid" ? 2 : null);
        var (q, k, v, dout) = Inputs(1, 8, 4, 24, 8, ScalarType.Float64);
        var docs = DocumentRows([10, 14]);
        var before = RunPacked(plan, q, k, v, dout, docs).Out;

        var (k2, v2) = (k.clone(), v.clone());
        k2.narrow(2, 0, 10).add_(1.0);
        v2.narrow(2, 0, 10).mul_(-3.0);
        var after = RunPacked(plan, q, k2, v2, dout, docs).Out;

        Assert.True(after.narrow(2, 10, 14).Identical(before.narrow(2, 10, 14)), "document 1 changed when only document 0 did");
        Assert.False(after.narrow(2, 0, 10).Identical(before.narrow(2, 0, 10)), "document 0 should have changed");
    }

    [Fact]
    public void PackedAttention_Float32_MatchesFloat64Reference()
    {
        var plan = SequenceParallelPlan.Create("zigzag-ring", 4, 8, 4);
        var (q, k, v, dout) = Inputs(1, 8, 4, 64, 16, ScalarType.Float32);
        var docs = DocumentRows([9, 30, 2, 23]);

        var expected = WithGrads((a, b, c) => BlockDiagonal(a, b, c, docs),
            q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), dout.to(ScalarType.Float64));
        var actual = RunPacked(plan, q, k, v, dout, docs);

        AssertClose(expected.Out, actual.Out, 1e-5, "out");
        AssertClose(expected.Dq, actual.Dq, 1e-5, "dq");
        AssertClose(expected.Dk, actual.Dk, 1e-5, "dk");
    }

    [Fact]
    public void DocumentIds_Runs_AreMaximalRangesOfOneDocument()
    {
        var docs = new DocumentIds([0, 0, 1, 1, 1, 2, 7, 7, 7, 7], 2, 5);
        Assert.Equal([(0L, 0, 2), (1L, 2, 3)], docs.Runs(0));
        Assert.Equal([(2L, 0, 1), (7L, 1, 4)], docs.Runs(1));
        Assert.Equal([(1L, 0, 2)], docs.Narrow(3, 2).Runs(0));
    }

    /// <summary>(B, T) document ids from per-row document lengths.</summary>
    internal static Tensor DocumentRows(params int[][] rows)
    {
        var t = rows[0].Sum();
        var ids = new long[rows.Length * t];
        for (var b = 0; b < rows.Length; b++)
        {
            Assert.Equal(t, rows[b].Sum());
            var pos = 0;
            for (var d = 0; d < rows[b].Length; d++)
                for (var j = 0; j < rows[b][d]; j++) ids[b * t + pos++] = d;
        }
        return torch.tensor(ids, [rows.Length, t], ScalarType.Int64);
    }

    /// <summary>softmax(q·kᵀ/√D, masked to earlier keys of the same document)·v.</summary>
    private static Tensor BlockDiagonal(Tensor q, Tensor k, Tensor v, Tensor docs)
    {
        var n = q.shape[1] / k.shape[1];
        k = k.repeat_interleave(n, dim: 1);
        v = v.repeat_interleave(n, dim: 1);
        var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(q.shape[^1]); // (B, H, T, T)
        var t = q.shape[2];
        var future = torch.ones(t, t, dtype: ScalarType.Bool).triu(1);
        var otherDoc = docs.unsqueeze(2).ne(docs.unsqueeze(1)).unsqueeze(1);   // (B, 1, T, T)
        return scores.masked_fill(future.logical_or(otherDoc), double.NegativeInfinity).softmax(-1).matmul(v);
    }

    private static (Tensor Out, Tensor Dq, Tensor Dk, Tensor Dv) RunPacked(SequenceParallelPlan plan, Tensor q, Tensor k, Tensor v, Tensor dout, Tensor docs)
    {
        var shards = InProcessWorld.Run(plan.Size, comm =>
        {
            var attention = plan.CreateAttention(comm);
            using var packed = PackedDocuments.Use(plan.Shard(docs, comm.Rank, 1));
            var (ql, kl, vl) = (plan.Shard(q, comm.Rank, 2).requires_grad_(), plan.Shard(k, comm.Rank, 2).requires_grad_(), plan.Shard(v, comm.Rank, 2).requires_grad_());
            var o = attention.Forward(ql, kl, vl);
            (o * plan.Shard(dout, comm.Rank, 2)).sum().backward();
            return (Out: o.detach(), Dq: ql.grad!, Dk: kl.grad!, Dv: vl.grad!);
        }, TimeSpan.FromSeconds(60));
        return (plan.Unshard(shards.Select(s => s.Out).ToList(), 2), plan.Unshard(shards.Select(s => s.Dq).ToList(), 2),
                plan.Unshard(shards.Select(s => s.Dk).ToList(), 2), plan.Unshard(shards.Select(s => s.Dv).ToList(), 2));
    }
}
