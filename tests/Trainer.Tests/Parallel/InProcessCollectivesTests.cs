using System.Diagnostics;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Parallel;

public class InProcessCollectivesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public void AllReduceSum_Float32_BitIdenticalOnEveryRankAndSummedInRankOrder()
    {
        const int n = 4;
        // Values of very different magnitudes: float32 addition order changes the result.
        var inputs = Enumerable.Range(0, n).Select(r => torch.randn(1000, generator: new Generator((ulong)r + 7)) * Math.Pow(10, 3 * r)).ToArray();

        var results = InProcessWorld.Run(n, comm =>
        {
            var t = inputs[comm.Rank].clone();
            comm.AllReduceSum(t);
            return t;
        }, Timeout);

        var inRankOrder = ((inputs[0] + inputs[1]) + inputs[2]) + inputs[3];
        Assert.All(results, r => Assert.True(r.Identical(inRankOrder), "not bit-identical to the rank-order sum"));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void ReduceScatterSum_UnevenParts_SameBitsAsTheAllReduceSlice(ScalarType dtype)
    {
        const int n = 4;
        long[] counts = [5, 0, 7, 3];                                      // uneven, one rank holds nothing
        var inputs = Enumerable.Range(0, n).Select(r => (torch.randn(15, generator: new Generator((ulong)r + 11)) * Math.Pow(10, 3 * r)).to(dtype)).ToArray();

        var results = InProcessWorld.Run(n, comm =>
        {
            var part = comm.ReduceScatterSum(inputs[comm.Rank], counts);
            var all = inputs[comm.Rank].clone();
            comm.AllReduceSum(all);
            return (part, all);
        }, Timeout);

        var inRankOrder = ((inputs[0] + inputs[1]) + inputs[2]) + inputs[3];
        long offset = 0;
        for (int r = 0; r < n; r++)
        {
            Assert.Equal(new[] { counts[r] }, results[r].part.shape);
            Assert.True(results[r].part.Identical(results[r].all.narrow(0, offset, counts[r])), $"rank {r}: not the all-reduce's bits");
            Assert.True(results[r].part.Identical(inRankOrder.narrow(0, offset, counts[r])), $"rank {r}: not the rank-order sum");
            offset += counts[r];
        }
    }

    [Fact]
    public void ReduceScatterSum_CountsThatDoNotCoverTheTensor_ThrowsWithBothSizes()
    {
        var e = Assert.Throws<RankFailedException>(() => InProcessWorld.Run(2, comm => comm.ReduceScatterSum(torch.zeros(6), [2, 3]), Timeout));
        Assert.Contains("counts add up to 5, the tensor has 6 elements", e.InnerException!.Message);
    }

    [Fact]
    public void AllGather_UnevenPartsWithAnEmptyOne_ConcatenatesInRankOrder()
    {
        var results = InProcessWorld.Run(3, comm => comm.AllGather(torch.full(comm.Rank == 1 ? 0 : comm.Rank + 1, (double)comm.Rank, dtype: ScalarType.Float64), dim: 0), Timeout);

        Assert.All(results, r => Assert.Equal(new double[] { 0, 2, 2, 2 }, r.data<double>().ToArray()));
    }

    [Fact]
    public void AllGather_ConcatenatesInRankOrder()
    {
        var results = InProcessWorld.Run(3, comm => comm.AllGather(torch.full(2, 2, comm.Rank, dtype: ScalarType.Float64), dim: 1), Timeout);

        var expected = torch.tensor(new double[,] { { 0, 0, 1, 1, 2, 2 }, { 0, 0, 1, 1, 2, 2 } });
        Assert.All(results, r => Assert.True(r.Identical(expected)));
    }

    [Fact]
    public void AllToAll_ScatterRowsGatherColumns_MatchesHandBuiltExpectation()
    {
        // Rank r holds a (3, 1) column [10r, 10r+1, 10r+2]; row j goes to rank j; rank j concatenates
        // the rows it receives from ranks 0, 1, 2 along dim 1: [j, 10+j, 20+j].
        var results = InProcessWorld.Run(3, comm =>
        {
            var mine = torch.tensor(new double[] { 10 * comm.Rank, 10 * comm.Rank + 1, 10 * comm.Rank + 2 }).reshape(3, 1);
            return comm.AllToAll(mine, scatterDim: 0, gatherDim: 1);
        }, Timeout);

        for (var j = 0; j < 3; j++)
            Assert.Equal(new double[] { j, 10 + j, 20 + j }, results[j].reshape(-1).data<double>().ToArray());
    }

    [Fact]
    public void AllToAll_Twice_WithSwappedDims_IsIdentity()
    {
        var inputs = Enumerable.Range(0, 4).Select(r => torch.randn(2, 8, 4, 3, generator: new Generator((ulong)r))).ToArray();

        var results = InProcessWorld.Run(4, comm =>
        {
            var there = comm.AllToAll(inputs[comm.Rank], 1, 2); // (2, 2, 16, 3)
            Assert.Equal(new long[] { 2, 2, 16, 3 }, there.shape);
            return comm.AllToAll(there, 2, 1);
        }, Timeout);

        for (var r = 0; r < 4; r++) Assert.True(results[r].Identical(inputs[r]));
    }

    [Fact]
    public void Broadcast_CopiesRootEverywhere()
    {
        var results = InProcessWorld.Run(3, comm =>
        {
            var t = torch.full(4, comm.Rank + 1.0);
            comm.Broadcast(t, root: 2);
            return t;
        }, Timeout);

        Assert.All(results, r => Assert.True(r.Identical(torch.full(4, 3.0))));
    }

    [Fact]
    public void SendRecv_Ring_DeliversInOrderPerTag()
    {
        var results = InProcessWorld.Run(3, comm =>
        {
            var (next, prev) = ((comm.Rank + 1) % 3, (comm.Rank + 2) % 3);
            comm.Send(torch.tensor(comm.Rank * 10.0), next, tag: 1);
            comm.Send(torch.tensor(comm.Rank * 10.0 + 1), next, tag: 1);
            comm.Send(torch.tensor(-1.0 - comm.Rank), next, tag: 2);
            var other = comm.Recv(prev, tag: 2).item<double>(); // a later tag first: tags are independent
            var first = comm.Recv(prev, tag: 1).item<double>();
            var buffer = torch.zeros(Array.Empty<long>(), dtype: ScalarType.Float64);
            comm.RecvInto(buffer, prev, tag: 1);
            return (first, second: buffer.item<double>(), other);
        }, Timeout);

        for (var r = 0; r < 3; r++)
        {
            var prev = (r + 2) % 3;
            Assert.Equal((prev * 10.0, prev * 10.0 + 1, -1.0 - prev), results[r]);
        }
    }

    [Fact]
    public void Send_ThenSenderModifiesTensor_ReceiverSeesValueAtSendTime()
    {
        var results = InProcessWorld.Run(2, comm =>
        {
            if (comm.Rank == 0)
            {
                var t = torch.ones(3);
                comm.Send(t, 1);
                t.fill_(5);
                comm.Barrier();
                return 0.0;
            }
            comm.Barrier();
            return comm.Recv(0).sum().item<float>();
        }, Timeout);

        Assert.Equal(3.0, results[1]);
    }

    [Fact]
    public void Split_IntoInterleavedPairs_ReducesWithinEachSubGroupOnly()
    {
        var results = InProcessWorld.Run(4, comm =>
        {
            var sub = comm.Split(comm.Rank % 2 == 0 ? [0, 2] : [1, 3]);
            var t = torch.tensor((double)comm.Rank);
            sub.AllReduceSum(t);
            return (sub.Rank, sub.WorldSize, sum: t.item<double>());
        }, Timeout);

        Assert.Equal(new[] { (0, 2, 2.0), (0, 2, 4.0), (1, 2, 2.0), (1, 2, 4.0) }, results);
    }

    [Fact]
    public void Run_RankThrowsWhilePeersBlockInRecvAndBarrier_RethrowsFirstFailureWithoutHanging()
    {
        var watch = Stopwatch.StartNew();

        var e = Assert.Throws<RankFailedException>(() => InProcessWorld.Run(3, comm =>
        {
            if (comm.Rank == 1) throw new InvalidOperationException("rank 1 broke");
            if (comm.Rank == 0) comm.Recv(1);
            else comm.Barrier();
        }, TimeSpan.FromMinutes(5)));

        Assert.Equal(1, e.Rank);
        Assert.Equal("rank 1 broke", e.InnerException!.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"peers took {watch.Elapsed} to give up");
    }

    [Fact]
    public void Recv_PeerNeverSends_TimesOut()
    {
        var e = Assert.Throws<RankFailedException>(() => InProcessWorld.Run(2, comm =>
        {
            if (comm.Rank == 0) comm.Recv(1, tag: 9);
        }, TimeSpan.FromMilliseconds(300)));

        Assert.IsType<TimeoutException>(e.InnerException);
        Assert.Equal(0, e.Rank);
    }

    [Fact]
    public void AllToAll_IndivisibleScatterDim_ThrowsWithSizes()
    {
        var e = Assert.Throws<RankFailedException>(() => InProcessWorld.Run(2, comm => comm.AllToAll(torch.zeros(3, 2), 0, 1), Timeout));
        Assert.Contains("not divisible by the group size 2", e.InnerException!.Message);
    }
}
