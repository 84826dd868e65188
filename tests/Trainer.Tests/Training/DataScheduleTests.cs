using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Tests.Training;

public class DataScheduleTests
{
    private static int[] EpochExamples(DataSchedule s, int epoch, int dp) =>
        Enumerable.Range(epoch * s.StepsPerEpoch, s.StepsPerEpoch)
            .SelectMany(step => Enumerable.Range(0, s.GradientAccumulationSteps)
                .SelectMany(m => Enumerable.Range(0, dp).SelectMany(d => s.Examples(step, m, d)))).ToArray();

    [Theory]
    // examples, batch, dp, accumulation, epochs → micro-batches per epoch, steps per epoch, total steps
    [InlineData(10, 2, 1, 1, 3.0, 5, 5, 15)]
    [InlineData(10, 2, 1, 2, 3.0, 5, 2, 6)]     // the fifth micro-batch of each epoch is dropped
    [InlineData(10, 2, 2, 1, 2.0, 3, 3, 6)]     // 4 rows per micro-batch; the last has 2 (one replica's worth)
    [InlineData(91, 4, 1, 2, 1.5, 23, 11, 17)]  // ceil(1.5 × 11)
    [InlineData(3, 4, 1, 2, 1.0, 1, 1, 1)]      // fewer micro-batches than accumulation steps: still one step
    public void Counts_MatchHandComputed(int n, int batch, int dp, int acc, double epochs, int micro, int perEpoch, int total)
    {
        var s = new DataSchedule(n, batch, dp, acc, epochs, maxSteps: -1, seed: 1);
        Assert.Equal(micro, s.MicroBatchesPerEpoch);
        Assert.Equal(perEpoch, s.StepsPerEpoch);
        Assert.Equal(total, s.TotalSteps);
        Assert.Equal(7, new DataSchedule(n, batch, dp, acc, epochs, maxSteps: 7, seed: 1).TotalSteps);
    }

    [Theory]
    [InlineData(10, 2, 1, 1)]
    [InlineData(12, 2, 2, 1)]
    [InlineData(13, 3, 2, 1)]   // the epoch's last micro-batch is short: one replica gets 1 row, the other none
    [InlineData(16, 2, 2, 2)]
    public void EveryEpoch_EachExampleExactlyOnce_DataParallelReplicasDisjoint(int n, int batch, int dp, int acc)
    {
        var s = new DataSchedule(n, batch, dp, acc, epochs: 3, maxSteps: -1, seed: 5);
        Assert.Equal(0, s.MicroBatchesPerEpoch % acc);                       // these cases drop nothing
        var orders = new List<int[]>();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var seen = EpochExamples(s, epoch, dp);
            Assert.Equal(Enumerable.Range(0, n), seen.Order());
            orders.Add(seen);
            for (int step = epoch * s.StepsPerEpoch; step < (epoch + 1) * s.StepsPerEpoch; step++)
                for (int m = 0; m < acc; m++)
                {
                    var replicas = Enumerable.Range(0, dp).Select(d => s.Examples(step, m, d)).ToArray();
                    Assert.All(replicas, r => Assert.True(r.Length <= batch));
                    Assert.Equal(replicas.Sum(r => r.Length), replicas.SelectMany(r => r).Distinct().Count());
                }
        }
        Assert.NotEqual(orders[0], orders[1]);                                // a fresh shuffle per epoch
    }

    [Fact]
    public void LeftoverMicroBatches_AreDroppedNotRepeated()
    {
        var s = new DataSchedule(10, 2, 1, 2, epochs: 1, maxSteps: -1, seed: 5);
        var seen = EpochExamples(s, 0, 1);
        Assert.Equal(8, seen.Length);
        Assert.Equal(8, seen.Distinct().Count());
    }

    [Fact]
    public void SameSeed_SameOrder_OtherSeed_OtherOrder()
    {
        var a = new DataSchedule(50, 2, 1, 1, 1, -1, seed: 42);
        var b = new DataSchedule(50, 2, 1, 1, 1, -1, seed: 42);
        var c = new DataSchedule(50, 2, 1, 1, 1, -1, seed: 43);
        Assert.Equal(EpochExamples(a, 0, 1), EpochExamples(b, 0, 1));
        Assert.NotEqual(EpochExamples(a, 0, 1), EpochExamples(c, 0, 1));
    }

    [Fact]
    public void EpochAt_CountsOptimizerSteps() =>
        Assert.Equal(1.4, new DataSchedule(10, 2, 1, 1, 3, -1, 1).EpochAt(stepsDone: 7), 12);   // 5 steps per epoch

    [Fact]
    public void ByTokens_BatchesStayWithinTheBudgetAndCoverEveryExampleOncePerEpoch()
    {
        var rng = new Random(3);
        var lengths = Enumerable.Range(0, 40).Select(_ => rng.Next(5, 200)).ToArray();
        var s = DataSchedule.ByTokens(lengths, maxTokensPerBatch: 512, padMultiple: 4, dataParallel: 2, gradAcc: 1, epochs: 2, maxSteps: -1, seed: 9);

        for (int epoch = 0; epoch < 2; epoch++)
        {
            var seen = EpochExamples(s, epoch, 2);
            Assert.Equal(Enumerable.Range(0, 40), seen.Order()); // each example once (this budget drops no micro-batch: gradAcc 1)
        }
        for (int step = 0; step < s.StepsPerEpoch; step++)
            for (int d = 0; d < 2; d++)
            {
                var batch = s.Examples(step, 0, d);
                if (batch.Length == 0) continue;
                int longest = (batch.Max(i => lengths[i]) + 3) / 4 * 4;
                Assert.True(batch.Length * longest <= 512, $"step {step} replica {d}: {batch.Length} × {longest} tokens");
            }
        Assert.True(s.MicroBatchesPerEpoch < 20, "short examples should share micro-batches");
    }

    [Fact]
    public void ByTokens_ExampleLongerThanTheBudget_IsABatchAlone()
    {
        var s = DataSchedule.ByTokens([10, 300, 12], maxTokensPerBatch: 100, padMultiple: 1, dataParallel: 1, gradAcc: 1, epochs: 1, maxSteps: -1, seed: 1);
        var batches = Enumerable.Range(0, s.StepsPerEpoch).Select(step => s.Examples(step, 0, 0)).ToList();
        Assert.Contains(batches, b => b.SequenceEqual([1]));
        Assert.Contains(batches, b => b.Order().SequenceEqual([0, 2]));
    }

    [Fact]
    public void ByTokens_SameSeed_SameOrder()
    {
        int[] lengths = [5, 9, 30, 2, 17, 8, 40, 11];
        var a = DataSchedule.ByTokens(lengths, 48, 2, 1, 1, 3, -1, seed: 4);
        var b = DataSchedule.ByTokens(lengths, 48, 2, 1, 1, 3, -1, seed: 4);
        for (int step = 0; step < a.TotalSteps; step++) Assert.Equal(a.Examples(step, 0, 0), b.Examples(step, 0, 0));
    }
}
