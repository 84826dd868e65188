using LongSeqService.Shared.Jobs;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Micro-benchmark of one attention layer under sequence parallelism: every rank is a thread with its
/// own intra-op thread count; each iteration runs forward and backward on random q/k/v shards; the
/// per-rank attention time (from <see cref="AttentionTimer"/>) shows the load balance of a layout.
/// </summary>
public static class SequenceParallelBenchmark
{
    public sealed record Options(
        SequenceParallelMode Mode = SequenceParallelMode.ZigzagRing,
        int WorldSize = 2,
        long SeqLen = 8192,
        long Batch = 1,
        int NumHeads = 8,
        int NumKeyValueHeads = 4,
        long HeadDim = 16,
        ScalarType DType = ScalarType.Float32,
        int Iterations = 3,
        int ThreadsPerRank = 1,
        IAttentionKernel? Kernel = null);

    /// <summary>Mean seconds per iteration on one rank.</summary>
    public sealed record RankTiming(int Rank, double ForwardSeconds, double BackwardSeconds, double WaitSeconds)
    {
        public double TotalSeconds => ForwardSeconds + BackwardSeconds;
    }

    public sealed record Result(Options Options, string Kernel, IReadOnlyList<RankTiming> Ranks, int IntraOpThreadsSeenByRanks)
    {
        /// <summary>The slowest rank sets the pace of a step.</summary>
        public double StepSeconds => Ranks.Max(r => r.TotalSeconds);

        public override string ToString() =>
            $"{SequenceParallelPlan.Name(Options.Mode)} N={Options.WorldSize} T={Options.SeqLen} {Options.DType} kernel={Kernel} threads/rank={IntraOpThreadsSeenByRanks}: " +
            string.Join("; ", Ranks.Select(r => $"rank {r.Rank} fwd {r.ForwardSeconds * 1e3:F0} ms + bwd {r.BackwardSeconds * 1e3:F0} ms = {r.TotalSeconds * 1e3:F0} ms (waiting {r.WaitSeconds * 1e3:F0} ms)")) +
            $"; step {StepSeconds * 1e3:F0} ms";
    }

    public static Result Run(Options o)
    {
        var plan = SequenceParallelPlan.Create(o.Mode, o.WorldSize, o.NumHeads, o.NumKeyValueHeads);
        var kernel = o.Kernel ?? BlockAttention.Auto;
        var local = o.SeqLen / o.WorldSize;
        var threadsSeen = new int[o.WorldSize];
        // set_num_threads is per thread but also becomes the default of threads created later: restore it.
        var callerThreads = torch.get_num_threads();
        var timings = InProcessWorld.Run(o.WorldSize, comm =>
        {
            torch.set_num_threads(o.ThreadsPerRank);
            threadsSeen[comm.Rank] = torch.get_num_threads();
            var timer = new AttentionTimer();
            var attention = plan.CreateAttention(comm, kernel, timer);
            var g = new Generator(17 + (ulong)comm.Rank);
            var q = torch.randn(o.Batch, o.NumHeads, local, o.HeadDim, dtype: o.DType, generator: g).requires_grad_();
            var k = torch.randn(o.Batch, o.NumKeyValueHeads, local, o.HeadDim, dtype: o.DType, generator: g).requires_grad_();
            var v = torch.randn(o.Batch, o.NumKeyValueHeads, local, o.HeadDim, dtype: o.DType, generator: g).requires_grad_();
            for (var i = 0; i <= o.Iterations; i++)
            {
                if (i == 1) timer.Reset(); // iteration 0 warms up (TorchScript profiling runs, allocator)
                using var scope = torch.NewDisposeScope();
                attention.Forward(q, k, v).sum().backward();
                q.grad?.zero_(); k.grad?.zero_(); v.grad?.zero_();
                comm.Barrier();
            }
            var n = (double)o.Iterations;
            return new RankTiming(comm.Rank, timer.Forward.TotalSeconds / n, timer.Backward.TotalSeconds / n, timer.CommunicationWait.TotalSeconds / n);
        }, TimeSpan.FromMinutes(30));
        torch.set_num_threads(callerThreads);
        return new Result(o, kernel == BlockAttention.Auto ? "auto" : kernel.Name, timings, threadsSeen.Min());
    }
}
