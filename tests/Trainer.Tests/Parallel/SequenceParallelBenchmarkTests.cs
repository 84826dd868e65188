using LongSeqService.Trainer.Parallel;

namespace LongSeqService.Trainer.Tests.Parallel;

public class SequenceParallelBenchmarkTests
{
    [Fact]
    public void Run_SmallZigzag_ReportsEveryRanksAttentionTime()
    {
        var result = SequenceParallelBenchmark.Run(new SequenceParallelBenchmark.Options(SeqLen: 256, Iterations: 1));

        Assert.Equal(2, result.Ranks.Count);
        Assert.All(result.Ranks, r => Assert.True(r.ForwardSeconds > 0 && r.BackwardSeconds > 0));
        Assert.Equal(1, result.IntraOpThreadsSeenByRanks);
    }
}
