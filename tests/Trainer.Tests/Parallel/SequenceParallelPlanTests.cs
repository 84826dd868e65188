using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Parallel;

public class SequenceParallelPlanTests
{
    [Fact]
    public void Create_UlyssesHeadsNotDivisible_SaysWhatWouldWork()
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceParallelPlan.Create("ulysses", 4, 14, 2));
        Assert.Equal("sequence_parallel_mode 'ulysses' needs num_attention_heads (14) divisible by sequence_parallel_size (4); " +
                     "use 'hybrid' (ulysses_degree 2 × ring 2) or 'zigzag-ring', or sequence_parallel_size 2, 7 or 14", e.Message);
    }

    [Theory]
    [InlineData(4, 14, 2)]
    [InlineData(6, 8, 2)]
    [InlineData(8, 8, 8)]
    [InlineData(3, 8, 1)]
    public void Create_HybridWithoutDegree_PicksLargestDivisorOfSizeThatDividesHeads(int size, int heads, int expected)
    {
        Assert.Equal(expected, SequenceParallelPlan.Create(SequenceParallelMode.Hybrid, size, heads, 2).UlyssesDegree);
    }

    [Fact]
    public void Create_HybridDegreeNotDividingHeads_ListsValidDegrees()
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceParallelPlan.Create(SequenceParallelMode.Hybrid, 4, 14, 2, 4));
        Assert.Contains("use 1 or 2", e.Message);
    }

    [Fact]
    public void Create_UnknownMode_NamesTheValidOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceParallelPlan.Create("striped", 2, 8, 8));
        Assert.Contains("'zigzag-ring', 'ring', 'ulysses', 'hybrid'", e.Message);
    }

    [Fact]
    public void Create_HeadsNotMultipleOfKvHeads_Throws()
    {
        Assert.Throws<ArgumentException>(() => SequenceParallelPlan.Create("zigzag-ring", 2, 6, 4));
    }

    [Theory]
    [InlineData("zigzag-ring", 4, null)]
    [InlineData("ring", 4, null)]
    [InlineData("ulysses", 4, null)]
    [InlineData("hybrid", 4, 2)]
    [InlineData("hybrid", 6, 3)]
    public void TokenIndices_EveryMode_PartitionTheSequence(string mode, int n, int? degree)
    {
        var plan = SequenceParallelPlan.Create(mode, n, 12, 6, degree);
        var all = Enumerable.Range(0, n).SelectMany(r => plan.TokenIndices(r, 48)).OrderBy(i => i);
        Assert.Equal(Enumerable.Range(0, 48).Select(i => (long)i), all);
    }

    [Fact]
    public void TokenIndices_Zigzag_RankHoldsChunksRAnd2NMinus1MinusR()
    {
        var plan = SequenceParallelPlan.Create("zigzag-ring", 2, 4, 4);
        Assert.Equal(new long[] { 0, 1, 6, 7 }, plan.TokenIndices(0, 8));
        Assert.Equal(new long[] { 2, 3, 4, 5 }, plan.TokenIndices(1, 8));
    }

    [Fact]
    public void TokenIndices_Hybrid_MembersSplitTheirGroupsRingShard()
    {
        // N = 4, u = 2: ring of 2 over zigzag chunks of 16/4 = 4; group 0 owns chunks 0 and 3, group 1 chunks 1 and 2.
        var plan = SequenceParallelPlan.Create(SequenceParallelMode.Hybrid, 4, 2, 2, 2);
        Assert.Equal(new long[] { 0, 1, 2, 3 }, plan.TokenIndices(0, 16));
        Assert.Equal(new long[] { 12, 13, 14, 15 }, plan.TokenIndices(1, 16));
        Assert.Equal(new long[] { 4, 5, 6, 7 }, plan.TokenIndices(2, 16));
        Assert.Equal(new long[] { 8, 9, 10, 11 }, plan.TokenIndices(3, 16));
    }

    [Fact]
    public void CheckSequenceLength_NotMultipleOf2N_SaysWhatToPadTo()
    {
        var plan = SequenceParallelPlan.Create("zigzag-ring", 3, 6, 2);
        var e = Assert.Throws<ArgumentException>(() => plan.CheckSequenceLength(20));
        Assert.Contains("padded to a multiple of 6", e.Message);
    }

    [Theory]
    [InlineData("zigzag-ring")]
    [InlineData("ulysses")]
    [InlineData("hybrid")]
    public void ShardThenUnshard_RoundTrips(string mode)
    {
        var plan = SequenceParallelPlan.Create(mode, 4, 8, 2);
        var x = torch.arange(2 * 24 * 3).reshape(2, 24, 3); // (B, T, C)
        var shards = Enumerable.Range(0, 4).Select(r => plan.Shard(x, r)).ToList();
        Assert.All(shards, s => Assert.Equal(new long[] { 2, 6, 3 }, s.shape));
        Assert.True(plan.Unshard(shards).Identical(x));
    }
}
