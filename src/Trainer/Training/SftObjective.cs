using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Supervised fine-tuning (and continual pre-training): token NLL summed per shard and divided by the
/// label tokens of the whole optimizer step — every micro-batch of every rank — never per micro-batch.
/// The units are whole sequences, or packed rows of several examples (<see cref="SftRows"/>).
/// </summary>
public sealed class SftObjective(ObjectiveContext c, SftRows train, SftRows val) : ITrainingObjective
{
    private double _lossSum;                    // this shard's token losses in the current step

    /// <summary>Tokens that carry a loss once labels are shifted: the first token is never predicted.</summary>
    public static int ShiftedLabelCount(EncodedSequence s) => s.Labels.Skip(1).Count(l => l != EncodedSequence.IgnoreIndex);

    public int ValidationCount => val.Count;

    public long LossWeight(int example) => train.LabelTokens(example);

    public long Tokens(int example) => train.Length(example);

    public void MicroBatch(int[] examples, double denominator, bool idle = false)
    {
        using var scope = NewDisposeScope();
        using var batch = train.Collate(c.Collator, examples);
        using var packed = Packed(batch);
        var (ids, labels, pos) = c.Shard(batch);
        var lossSum = ObjectiveContext.TokenNll(c.Model, ids, labels, pos).sum();
        using Scalar scale = idle ? double.PositiveInfinity : denominator;   // held, not an implicit temporary (see AdamW.Update)
        MemoryProbe.Mark("forward_end");
        ObjectiveContext.Backward(lossSum.div(scale));
        MemoryProbe.Mark("backward_end");
        if (!idle) _lossSum += lossSum.ToDouble();   // this shard's share; summed over the world afterwards
    }

    public ObjectiveFigures ReduceStep(double denominator)
    {
        double total = c.Rank.World.SumDoubles(_lossSum)[0];
        _lossSum = 0;
        return new ObjectiveFigures(total / denominator, (long)denominator);
    }

    public (double LossSum, double Count) EvaluateBatch(int[] examples)
    {
        using var batch = val.Collate(c.Collator, examples);
        using var packed = Packed(batch);
        var (ids, labels, pos) = c.Shard(batch);
        using Scalar ignore = Losses.IgnoreIndex;
        return (ObjectiveContext.TokenNll(c.Model, ids, labels, pos).sum().ToDouble(), labels.ne(ignore).sum().item<long>());
    }

    /// <summary>Packed rows: attention stays inside each example, in forward, backward and its recomputation.</summary>
    private IDisposable Packed(Batch batch) => PackedDocuments.Use(batch.DocumentIds is { } docs ? c.Rank.Shard(docs) : null);
}

/// <summary>What an SFT step trains on: whole sequences (labels shifted by the collator) or packed rows
/// (labels shifted per example before packing, positions and document ids of their own).</summary>
public sealed class SftRows
{
    private readonly IReadOnlyList<EncodedSequence>? _sequences;
    private readonly IReadOnlyList<PackedRow>? _packed;

    public SftRows(TrainingData data)
    {
        (_sequences, _packed) = (data.Packed is null ? data.Sft ?? [] : null, data.Packed);
    }

    public int Count => _packed?.Count ?? _sequences!.Count;

    public int LabelTokens(int i) => _packed?[i].LabelCount ?? SftObjective.ShiftedLabelCount(_sequences![i]);

    public int Length(int i) => _packed?[i].Length ?? _sequences![i].Length;

    public Batch Collate(Collator collator, int[] rows) => _packed is { } p
        ? collator.CollatePacked(rows.Select(i => p[i]).ToList())
        : collator.Collate(rows.Select(i => _sequences![i]).ToList());
}
