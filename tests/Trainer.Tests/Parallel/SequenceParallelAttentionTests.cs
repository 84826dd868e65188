using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static LongSeqService.Trainer.Tests.Parallel.AttentionReference;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Parallel;

/// <summary>Every SP mode against full causal attention on the whole sequence, forward and backward.</summary>
public class SequenceParallelAttentionTests
{
    public static TheoryData<string, int, int, int> Float64Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var mode in new[] { "zigzag-ring", "ring", "ulysses", "hybrid" })
            foreach (var n in new[] { 1, 2, 3, 4 })
                foreach (var (hq, hkv) in new[] { (6, 2), (8, 4) })
                    if (mode != "ulysses" || hq % n == 0)
                        data.Add(mode, n, hq, hkv);
        return data;
    }

    [Theory]
    [MemberData(nameof(Float64Cases))]
    public void Attention_Float64_MatchesFullCausalAttention(string mode, int n, int hq, int hkv)
    {
        var plan = SequenceParallelPlan.Create(mode, n, hq, hkv);
        var (q, k, v, dout) = Inputs(2, hq, hkv, 24, 8, ScalarType.Float64); // 24 = a multiple of 2N for N ≤ 4

        var expected = WithGrads((a, b, c) => Attention(a, b, c), q, k, v, dout);
        var actual = RunSharded(plan, q, k, v, dout);

        AssertClose(expected.Out, actual.Out, 1e-10, "out");
        AssertClose(expected.Dq, actual.Dq, 1e-10, "dq");
        AssertClose(expected.Dk, actual.Dk, 1e-10, "dk");
        AssertClose(expected.Dv, actual.Dv, 1e-10, "dv");
    }

    [Theory]
    [InlineData(4, 8, 4, 2)] // 2 Ulysses groups of 2 × ring of 2
    [InlineData(4, 6, 2, 2)] // heads don't divide 4: what hybrid is for
    [InlineData(6, 6, 2, 3)] // 2 ring groups × Ulysses 3, K/V heads repeated to 3
    public void Hybrid_ExplicitDegree_MatchesFullCausalAttention(int n, int hq, int hkv, int degree)
    {
        var plan = SequenceParallelPlan.Create(SequenceParallelMode.Hybrid, n, hq, hkv, degree);
        Assert.Equal(n / degree, plan.RingSize);
        var (q, k, v, dout) = Inputs(1, hq, hkv, 2 * n * 3, 8, ScalarType.Float64);

        var expected = WithGrads((a, b, c) => Attention(a, b, c), q, k, v, dout);
        var actual = RunSharded(plan, q, k, v, dout);

        AssertClose(expected.Out, actual.Out, 1e-10, "out");
        AssertClose(expected.Dq, actual.Dq, 1e-10, "dq");
        AssertClose(expected.Dk, actual.Dk, 1e-10, "dk");
        AssertClose(expected.Dv, actual.Dv, 1e-10, "dv");
    }

    [Theory]
    [InlineData("zigzag-ring")]
    [InlineData("ring")]
    [InlineData("ulysses")]
    [InlineData("hybrid")]
    public void Attention_Float32_MatchesFloat64Reference(string mode)
    {
        var plan = SequenceParallelPlan.Create(mode, 4, 8, 4, mode == "hybrid" ? 2 : null);
        var (q, k, v, dout) = Inputs(1, 8, 4, 64, 16, ScalarType.Float32);

        var expected = WithGrads((a, b, c) => Attention(a, b, c), q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), dout.to(ScalarType.Float64));
        var actual = RunSharded(plan, q, k, v, dout);

        Assert.Equal(ScalarType.Float32, actual.Out.dtype);
        AssertClose(expected.Out, actual.Out, 1e-5, "out");
        AssertClose(expected.Dq, actual.Dq, 1e-5, "dq");
        AssertClose(expected.Dk, actual.Dk, 1e-5, "dk");
        AssertClose(expected.Dv, actual.Dv, 1e-5, "dv");
    }

    [Fact]
    public void ZigzagRing_BFloat16_MergesInFloat32AndStaysCloseToReference()
    {
        var plan = SequenceParallelPlan.Create("zigzag-ring", 2, 8, 4);
        var (q, k, v, dout) = Inputs(1, 8, 4, 64, 16, ScalarType.Float32);
        (q, k, v, dout) = (q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16), dout.to(ScalarType.BFloat16));

        var expected = WithGrads((a, b, c) => Attention(a, b, c), q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), dout.to(ScalarType.Float64));
        var actual = RunSharded(plan, q, k, v, dout);

        Assert.Equal(ScalarType.BFloat16, actual.Out.dtype);
        AssertClose(expected.Out, actual.Out, 2e-2, "out");
        AssertClose(expected.Dq, actual.Dq, 3e-2, "dq");
        AssertClose(expected.Dk, actual.Dk, 3e-2, "dk");
    }

    [Theory]
    [InlineData("zigzag-ring")]
    [InlineData("ulysses")]
    public void Attention_MathKernel_MatchesFullCausalAttention(string mode)
    {
        var plan = SequenceParallelPlan.Create(mode, 2, 6, 2);
        var (q, k, v, dout) = Inputs(1, 6, 2, 16, 8, ScalarType.Float64);

        var expected = WithGrads((a, b, c) => Attention(a, b, c), q, k, v, dout);
        var actual = RunSharded(plan, q, k, v, dout, MathAttentionKernel.Instance);

        AssertClose(expected.Out, actual.Out, 1e-10, "out");
        AssertClose(expected.Dk, actual.Dk, 1e-10, "dk");
    }

    [Theory]
    [InlineData("zigzag-ring")]
    [InlineData("ring")]
    [InlineData("ulysses")]
    [InlineData("hybrid")]
    public void Attention_SequencePaddedAtEnd_RealTokensMatchUnpaddedAttention(string mode)
    {
        const int real = 21, padded = 24; // N = 3 needs a multiple of 6
        var plan = SequenceParallelPlan.Create(mode, 3, 6, 2);
        var (q, k, v, dout) = Inputs(1, 6, 2, padded, 8, ScalarType.Float64);
        dout.narrow(2, real, padded - real).zero_(); // padded positions carry no labels, so no gradient

        var expected = WithGrads((a, b, c) => Attention(a, b, c),
            q.narrow(2, 0, real), k.narrow(2, 0, real), v.narrow(2, 0, real), dout.narrow(2, 0, real));
        var actual = RunSharded(plan, q, k, v, dout);

        AssertClose(expected.Out, actual.Out.narrow(2, 0, real), 1e-10, "out");
        AssertClose(expected.Dq, actual.Dq.narrow(2, 0, real), 1e-10, "dq");
        AssertClose(expected.Dk, actual.Dk.narrow(2, 0, real), 1e-10, "dk");
        AssertClose(expected.Dv, actual.Dv.narrow(2, 0, real), 1e-10, "dv");
        Assert.Equal(0.0, actual.Dk.narrow(2, real, padded - real).abs().max().item<double>());
    }

    [Theory]
    [InlineData("zigzag-ring")]
    [InlineData("hybrid")]
    public void Attention_TwoStackedLayersInsideDisposeScope_MatchesReference(string mode)
    {
        // Two attention calls per step share the group (and message tags), as decoder layers do.
        var plan = SequenceParallelPlan.Create(mode, 4, 8, 8, mode == "hybrid" ? 2 : null);
        var (q, k, v, dout) = Inputs(1, 8, 8, 16, 4, ScalarType.Float64);
        Tensor TwoLayers(Tensor a, Tensor b, Tensor c, Func<Tensor, Tensor, Tensor, Tensor> attention) => attention(attention(a, b, c), b, c);
        var expected = WithGrads((a, b, c) => TwoLayers(a, b, c, (x, y, z) => Attention(x, y, z)), q, k, v, dout);

        var shards = InProcessWorld.Run(4, comm =>
        {
            var attention = plan.CreateAttention(comm);
            var (ql, kl, vl) = (plan.Shard(q, comm.Rank, 2).requires_grad_(), plan.Shard(k, comm.Rank, 2).requires_grad_(), plan.Shard(v, comm.Rank, 2).requires_grad_());
            using (var step = torch.NewDisposeScope())
            {
                var o = TwoLayers(ql, kl, vl, attention.Forward);
                (o * plan.Shard(dout, comm.Rank, 2)).sum().backward();
            }
            return (Dq: ql.grad!, Dk: kl.grad!);
        }, TimeSpan.FromSeconds(60));

        AssertClose(expected.Dq, plan.Unshard(shards.Select(s => s.Dq).ToList(), 2), 1e-10, "dq");
        AssertClose(expected.Dk, plan.Unshard(shards.Select(s => s.Dk).ToList(), 2), 1e-10, "dk");
    }

    [Fact]
    public void ZigzagRing_DataParallelTimesSequenceParallelWorld_EachSpGroupMatchesItsReference()
    {
        // World of 4 = 2 data-parallel replicas × SP groups of 2 ranks ({0, 1} and {2, 3}), each on its own batch.
        var plan = SequenceParallelPlan.Create("zigzag-ring", 2, 4, 2);
        var batches = new[] { Inputs(1, 4, 2, 8, 4, ScalarType.Float64, seed: 1), Inputs(1, 4, 2, 8, 4, ScalarType.Float64, seed: 2) };

        var outs = InProcessWorld.Run(4, world =>
        {
            var replica = world.Rank / 2;
            var sp = world.Split([2 * replica, 2 * replica + 1]);
            var (q, k, v, _) = batches[replica];
            return plan.CreateAttention(sp).Forward(plan.Shard(q, sp.Rank, 2), plan.Shard(k, sp.Rank, 2), plan.Shard(v, sp.Rank, 2));
        }, TimeSpan.FromSeconds(60));

        for (var replica = 0; replica < 2; replica++)
        {
            var (q, k, v, _) = batches[replica];
            AssertClose(Attention(q, k, v), plan.Unshard([outs[2 * replica], outs[2 * replica + 1]], 2), 1e-10, $"replica {replica}");
        }
    }

    [Fact]
    public void RingAttention_ZigzagOddLocalLength_ThrowsWithPaddingHint()
    {
        var e = Assert.Throws<RankFailedException>(() => InProcessWorld.Run(2, comm =>
        {
            var x = torch.randn(1, 2, 3, 4, dtype: ScalarType.Float64);
            new RingAttention(comm).Forward(x, x, x);
        }, TimeSpan.FromSeconds(30)));
        Assert.Contains("multiple of 2 × 2", e.InnerException!.Message);
    }

    [Fact]
    public void RingAttention_KernelFailsInBackward_RaisesOnEveryRankInsteadOfHanging()
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<RankFailedException>(() => InProcessWorld.Run(3, comm =>
        {
            var kernel = comm.Rank == 1 ? new FailingBackwardKernel() : BlockAttention.Auto;
            var x = torch.randn(1, 2, 4, 4, dtype: ScalarType.Float64).requires_grad_();
            new RingAttention(comm, kernel: kernel).Forward(x, x, x).sum().backward();
        }, TimeSpan.FromSeconds(60)));
        Assert.Equal(1, e.Rank);
        Assert.IsType<InvalidOperationException>(e.InnerException);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
    }

    [Fact]
    public void AttentionTimer_AfterForwardAndBackward_RecordsTimePerRank()
    {
        var timers = InProcessWorld.Run(2, comm =>
        {
            var timer = new AttentionTimer();
            var x = torch.randn(1, 2, 8, 4).requires_grad_();
            new RingAttention(comm, timer: timer).Forward(x, x, x).sum().backward();
            return timer;
        });
        Assert.All(timers, t => Assert.True(t.Forward > TimeSpan.Zero && t.Backward > TimeSpan.Zero));
    }

    private sealed class FailingBackwardKernel : IAttentionKernel
    {
        public string Name => "failing";
        public bool Supports(Tensor q) => true;
        public (Tensor Out, Tensor Lse) Forward(Tensor q, Tensor k, Tensor v, bool causal) => BlockAttention.Attend(q, k, v, causal);
        public (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal) =>
            throw new InvalidOperationException("kernel failed in backward");
    }
}
