using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// Against Hugging Face's schedules (transformers.optimization), worked out by hand for peak 1e-3, 10
/// steps, 2 warm-up steps. The value at step s is the rate of the (s+1)-th optimizer step: HF calls
/// scheduler.step() after optimizer.step(), so the first step with warm-up runs at rate 0.
/// </summary>
public class LrScheduleTests
{
    private const double Peak = 1e-3;

    [Fact]
    public void Cosine_WithWarmup_MatchesHuggingFace()
    {
        var s = LrSchedule.From(LrSchedulerType.Cosine, Peak, totalSteps: 10, warmupSteps: 2, warmupRatio: 0);
        // warm-up: s / 2; then 0.5 (1 + cos(π (s − 2) / 8))
        Assert.Equal(0.0, s.At(0));
        Assert.Equal(0.5e-3, s.At(1), 15);
        Assert.Equal(1e-3, s.At(2), 15);
        Assert.Equal(1e-3 * 0.5 * (1 + Math.Sqrt(0.5)), s.At(4), 15);   // progress 1/4: cos(π/4) = √½
        Assert.Equal(0.5e-3, s.At(6), 15);                               // progress 1/2
        Assert.Equal(1e-3 * 0.5 * (1 - Math.Sqrt(0.5)), s.At(8), 15);   // progress 3/4
        Assert.Equal(0.0, s.At(10), 15);
    }

    [Fact]
    public void Linear_WithWarmup_MatchesHuggingFace()
    {
        var s = LrSchedule.From(LrSchedulerType.Linear, Peak, totalSteps: 10, warmupSteps: 2, warmupRatio: 0);
        // warm-up s / 2; then (10 − s) / 8
        Assert.Equal(0.5e-3, s.At(1), 15);
        Assert.Equal(1e-3, s.At(2), 15);
        Assert.Equal(0.75e-3, s.At(4), 15);
        Assert.Equal(0.125e-3, s.At(9), 15);
        Assert.Equal(0.0, s.At(10), 15);
    }

    /// <summary>HF's constant_with_warmup (HF's plain "constant" has no warm-up; here warm-up settings apply to every type).</summary>
    [Fact]
    public void Constant_WithWarmup_MatchesHuggingFaceConstantWithWarmup()
    {
        var s = LrSchedule.From(LrSchedulerType.Constant, Peak, totalSteps: 10, warmupSteps: 2, warmupRatio: 0);
        Assert.Equal(0.0, s.At(0));
        Assert.Equal(0.5e-3, s.At(1), 15);
        Assert.All(new[] { 2, 5, 9 }, k => Assert.Equal(Peak, s.At(k)));
        Assert.Equal(Peak, LrSchedule.From(LrSchedulerType.Constant, Peak, 10, 0, 0).At(0));
    }

    /// <summary>HF: warmup_steps when positive, else ceil(warmup_ratio × total steps).</summary>
    [Theory]
    [InlineData(0, 0.05, 60, 3)]
    [InlineData(0, 0.1, 15, 2)]
    [InlineData(4, 0.5, 60, 4)]
    [InlineData(0, 0.0, 60, 0)]
    public void WarmupSteps_FromRatio_RoundsUpLikeHuggingFace(int steps, double ratio, int total, int expected) =>
        Assert.Equal(expected, LrSchedule.From(LrSchedulerType.Cosine, Peak, total, steps, ratio).WarmupSteps);

    [Fact]
    public void UndefinedType_Throws() =>
        Assert.ThrowsAny<ArgumentException>(() => new LrSchedule((LrSchedulerType)99, Peak, 0, 10).At(3));
}
