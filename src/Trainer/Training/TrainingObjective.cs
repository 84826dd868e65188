using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// What a training stage optimises: its micro-batch loss (forward and backward), its evaluation and
/// the reduction of its figures over the ranks. <see cref="RankTrainer"/> runs the step loop, the
/// gradient sum and clip, the optimizer and the logging for every objective alike.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>Training example <paramref name="example"/>'s share of the step's loss normaliser:
    /// its label tokens (SFT: the mean is over tokens) or 1 (DPO: over pairs).</summary>
    long LossWeight(int example);

    /// <summary>Tokens example <paramref name="example"/> feeds through the model (both answers of a pair).</summary>
    long Tokens(int example);

    /// <summary>Forward and backward of this replica's share of one micro-batch, the loss divided by the
    /// step's <paramref name="denominator"/>; its figures are kept until <see cref="ReduceStep"/>.
    /// <paramref name="idle"/>: the examples are another replica's, run only so that this replica takes part
    /// in ZeRO stage 3's collectives — the loss is scaled by zero (every gradient is zero) and its figures dropped.</summary>
    void MicroBatch(int[] examples, double denominator, bool idle = false);

    /// <summary>The step's figures, reduced over the ranks (a collective: every rank calls it), then cleared.</summary>
    ObjectiveFigures ReduceStep(double denominator);

    /// <summary>One held-out batch, no gradients: this rank's loss sum and what it counts (label tokens, pairs).</summary>
    (double LossSum, double Count) EvaluateBatch(int[] examples);

    /// <summary>Held-out examples.</summary>
    int ValidationCount { get; }
}

/// <summary>What an objective reports of one step: the mean loss, the label tokens it was taken over
/// (SFT), and the objective's own figures (DPO's rewards).</summary>
public sealed record ObjectiveFigures(double Loss, long LabelTokens, PreferenceMetrics? Preference = null);

/// <summary>What every objective works with: where the rank sits, the spec, the policy and the collator.</summary>
public sealed record ObjectiveContext(RankContext Rank, JobSpec Spec, CausalLM Model, Collator Collator)
{
    /// <summary>This rank's shard of a collated batch: (B, T/N) ids, shifted labels and global positions.</summary>
    public (Tensor Ids, Tensor Labels, Tensor Positions) Shard(Batch batch) =>
        (Rank.Shard(batch.InputIds), Rank.Shard(batch.Labels), Rank.Shard(batch.PositionIds));

    /// <summary>(B, T/N) per-token NLL of <paramref name="model"/> on this shard through the fused head + loss
    /// (the (T, V) logits never whole); float32, float64 for float64 models.</summary>
    public static Tensor TokenNll(CausalLM model, Tensor ids, Tensor labels, Tensor positions) =>
        model.Head(model.Hidden(ids, positions), hidden => ChunkedLmLoss.TokenNll(hidden, model.HeadWeight, labels, model.LossChunkTokens,
            gradientInto: model.ParameterGather is null ? model.HeadWeight : null));     // ZeRO-3's head unit collects the gradient itself

    /// <summary>Backward of a micro-batch's loss, then the release of what custom backwards handed to the engine.</summary>
    public static void Backward(Tensor loss)
    {
        loss.backward();
        HandedOver.ReleaseAll();
    }
}

public static class TrainingObjectives
{
    /// <summary>The objective of a stage. Continual pre-training (<c>pt</c>) is SFT's token NLL over every token
    /// (its data simply labels them all).</summary>
    public static ITrainingObjective Create(ObjectiveContext c, CausalLM? reference, TrainingData train, TrainingData val) =>
        IsPreference(c.Spec.Stage)
            ? new DpoObjective(c, reference, train.Pairs!, val.Pairs ?? [])
            : new SftObjective(c, new SftRows(train), new SftRows(val));

    /// <summary>Whether a run of <paramref name="spec"/> holds a frozen reference model beside the policy.</summary>
    public static bool NeedsReferenceModel(JobSpec spec) => IsPreference(spec.Stage) && DpoObjective.NeedsReferenceModel(spec);

    /// <summary>The one place a stage decides the objective.</summary>
    private static bool IsPreference(Stage stage) => stage switch
    {
        Stage.Sft or Stage.Pt => false,
        Stage.Dpo => true,
        _ => throw new NotSupportedException($"stage '{stage.Wire()}' has no training objective (sft, pt, dpo)"),
    };
}
