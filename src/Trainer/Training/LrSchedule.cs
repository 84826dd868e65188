using LongSeqService.Shared.Jobs;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Learning rate as a function of the optimizer step, as Hugging Face's schedulers define it:
/// linear warm-up from 0, then cosine / linear decay to 0, or constant. <paramref name="step"/> is the
/// number of optimizer steps already taken (0 for the first step), so a resumed run needs no state
/// beyond the step counter.
/// </summary>
public sealed record LrSchedule(LrSchedulerType Type, double PeakLr, int WarmupSteps, int TotalSteps)
{
    public static LrSchedule From(LrSchedulerType type, double peakLr, int totalSteps, int warmupSteps, double warmupRatio) =>
        new(type, peakLr, warmupSteps > 0 ? warmupSteps : (int)Math.Ceiling(warmupRatio * totalSteps), totalSteps);

    public double At(int step)
    {
        if (step < WarmupSteps) return PeakLr * step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Type switch
        {
            LrSchedulerType.Cosine => PeakLr * Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * progress))),
            LrSchedulerType.Linear => PeakLr * Math.Max(0.0, 1.0 - progress),
            LrSchedulerType.Constant => PeakLr,
            _ => throw new ArgumentOutOfRangeException(nameof(Type), Type, "unknown lr_scheduler_type"),
        };
    }
}
