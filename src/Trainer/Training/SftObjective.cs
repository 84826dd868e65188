using LongSeqService.Shared.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Supervised fine-tuning (and continual pre-training): token NLL summed per shard and divided by the
/// label tokens of the whole optimizer step — every micro-batch of every rank — never per micro-batch.
/// </summary>
public sealed class SftObjective(ObjectiveContext c, IReadOnlyList<EncodedSequence> train, IReadOnlyList<EncodedSequence> val) : ITrainingObjective
{
    private readonly int[] _labelTokens = train.Select(ShiftedLabelCount).ToArray();
    private double _lossSum;                    // this shard's token losses in the current step

    /// <summary>Tokens that carry a loss once labels are shifted: the first token is never predicted.</summary>
    public static int ShiftedLabelCount(EncodedSequence s) => s.Labels.Skip(1).Count(l => l != EncodedSequence.IgnoreIndex);

    public int ValidationCount => val.Count;

    public long LossWeight(int example) => _labelTokens[example];

    public long Tokens(int example) => train[example].InputIds.Length;

    public void MicroBatch(int[] examples, double denominator)
    {
        using var scope = NewDisposeScope();
        using var batch = c.Collator.Collate(examples.Select(i => train[i]).ToList());
        var (ids, labels, pos) = c.Shard(batch);
        var lossSum = ObjectiveContext.TokenNll(c.Model, ids, labels, pos).sum();
        using Scalar scale = denominator;          // held, not an implicit temporary (see AdamW.Update)
        lossSum.div(scale).backward();
        _lossSum += lossSum.ToDouble();            // this shard's share; summed over the world afterwards
    }

    public ObjectiveFigures ReduceStep(double denominator)
    {
        double total = c.Rank.World.SumDoubles(_lossSum)[0];
        _lossSum = 0;
        return new ObjectiveFigures(total / denominator, (long)denominator);
    }

    public (double LossSum, double Count) EvaluateBatch(int[] examples)
    {
        using var batch = c.Collator.Collate(examples.Select(i => val[i]).ToList());
        var (ids, labels, pos) = c.Shard(batch);
        using Scalar ignore = Losses.IgnoreIndex;
        return (ObjectiveContext.TokenNll(c.Model, ids, labels, pos).sum().ToDouble(), labels.ne(ignore).sum().item<long>());
    }
}
