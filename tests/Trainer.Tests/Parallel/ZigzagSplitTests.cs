using LongSeqService.Trainer.Parallel;
using TorchSharp;

namespace LongSeqService.Trainer.Tests.Parallel;

public class ZigzagSplitTests
{
    [Fact]
    public void Shard_ThreeRanks_HoldsChunksRAnd2NMinus1MinusR()
    {
        var x = torch.arange(12).reshape(1, 12); // chunks of 2: [0 1] [2 3] [4 5] [6 7] [8 9] [10 11]
        Assert.Equal(new long[] { 0, 1, 10, 11 }, ZigzagSplit.Shard(x, 0, 3).data<long>().ToArray());
        Assert.Equal(new long[] { 2, 3, 8, 9 }, ZigzagSplit.Shard(x, 1, 3).data<long>().ToArray());
        Assert.Equal(new long[] { 4, 5, 6, 7 }, ZigzagSplit.Shard(x, 2, 3).data<long>().ToArray());
    }

    [Fact]
    public void Gather_OfShards_RestoresSequence()
    {
        var x = torch.randn(2, 16, 3);
        var shards = Enumerable.Range(0, 4).Select(r => ZigzagSplit.Shard(x, r, 4)).ToList();
        Assert.True(ZigzagSplit.Gather(shards).Identical(x));
    }

    [Fact]
    public void Indices_AgreeWithShard()
    {
        var x = torch.arange(24).reshape(1, 24);
        for (var r = 0; r < 3; r++)
            Assert.Equal(ZigzagSplit.Indices(r, 3, 24), ZigzagSplit.Shard(x, r, 3).data<long>().ToArray());
    }

    [Fact]
    public void Contiguous_ShardAndGather_RoundTrip()
    {
        var x = torch.arange(12).reshape(1, 12);
        Assert.Equal(new long[] { 4, 5, 6, 7 }, ZigzagSplit.ContiguousShard(x, 1, 3).data<long>().ToArray());
        var shards = Enumerable.Range(0, 3).Select(r => ZigzagSplit.ContiguousShard(x, r, 3)).ToList();
        Assert.True(ZigzagSplit.ContiguousGather(shards).Identical(x));
    }

    [Fact]
    public void Shard_LengthNotMultipleOf2N_ThrowsWithPaddingHint()
    {
        var e = Assert.Throws<ArgumentException>(() => ZigzagSplit.Shard(torch.zeros(1, 10), 0, 3));
        Assert.Contains("pad the sequence (with ignored labels) to a multiple of 6", e.Message);
    }
}
