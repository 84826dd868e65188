namespace LongSeqService.Trainer.Training;

/// <summary>The figures of one optimizer step, identical on every rank. The shared loop fills the
/// gradient norm, learning rate and token count; the objective fills the loss, the label tokens and its
/// own figures (<see cref="Preference"/> for DPO).</summary>
public sealed record StepMetrics(double Loss, double GradNorm, double Lr, long LabelTokens, long Tokens, PreferenceMetrics? Preference = null)
{
    public double? ChosenReward => Preference?.ChosenReward;
    public double? RejectedReward => Preference?.RejectedReward;
    public double? Accuracy => Preference?.Accuracy;
    public double? Margin => Preference?.Margin;
}

/// <summary>DPO's figures of a step, each a mean over its pairs: rewards β·(π − ref) of the chosen and the
/// rejected answers, the share of pairs whose chosen reward is higher, and the mean reward margin.</summary>
public sealed record PreferenceMetrics(double ChosenReward, double RejectedReward, double Accuracy, double Margin)
{
    /// <summary>The mean over several steps (a logging window).</summary>
    public static PreferenceMetrics? Mean(IReadOnlyList<PreferenceMetrics?> steps) =>
        steps.Count == 0 || steps.Any(s => s is null) ? null
            : new(steps.Average(s => s!.ChosenReward), steps.Average(s => s!.RejectedReward), steps.Average(s => s!.Accuracy), steps.Average(s => s!.Margin));
}
