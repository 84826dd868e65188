using LongSeqService.Shared.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Direct Preference Optimization (sigmoid loss) on full-sequence log-prob sums, the loss divided by the
/// pairs of the whole optimizer step. The reference is a frozen copy (full fine-tuning), the base model
/// with the adapters off (LoRA), or log-probs computed once from the initial weights (precompute_ref_logps).
/// </summary>
public sealed class DpoObjective : ITrainingObjective
{
    private readonly ObjectiveContext _c;
    private readonly CausalLM? _reference;
    private readonly IReadOnlyList<EncodedPair> _train, _val;
    private readonly double[,]? _refLogps;           // precomputed (chosen, rejected) per pair
    private readonly double[,]? _valRefLogps;        // the same for the held-out pairs
    private Sums _sums;                              // this replica's pairs in the current step

    /// <summary>The step's figures as sums over pairs (losses, rewards, correct orderings, margins).</summary>
    private readonly record struct Sums(double Loss, double Chosen, double Rejected, double Correct, double Margin)
    {
        public static Sums Of(DpoLoss.Result r) => new(r.Losses.sum().ToDouble(), r.ChosenRewards.sum().ToDouble(), r.RejectedRewards.sum().ToDouble(),
            (r.ChosenRewards > r.RejectedRewards).sum().ToDouble(), (r.ChosenRewards - r.RejectedRewards).sum().ToDouble());
        public static Sums operator +(Sums a, Sums b) => new(a.Loss + b.Loss, a.Chosen + b.Chosen, a.Rejected + b.Rejected, a.Correct + b.Correct, a.Margin + b.Margin);
    }

    /// <summary>Full fine-tuning without precomputed log-probs keeps a frozen reference copy in memory.</summary>
    public static bool NeedsReferenceModel(JobSpec spec) => !spec.PrecomputeRefLogps && spec.FinetuningType == FinetuningType.Full;

    public DpoObjective(ObjectiveContext c, CausalLM? reference, IReadOnlyList<EncodedPair> train, IReadOnlyList<EncodedPair> val)
    {
        (_c, _reference, _train, _val) = (c, reference, train, val);
        if (c.Spec.PrecomputeRefLogps)
        {
            // Without a reference model in memory, the initial weights are the reference only now, before training.
            _refLogps = PrecomputeReferenceLogps(train);
            if (val.Count > 0) _valRefLogps = PrecomputeReferenceLogps(val);
        }
    }

    public int ValidationCount => _val.Count;

    public long LossWeight(int example) => 1;

    public long Tokens(int example) => (long)_train[example].Chosen.InputIds.Length + _train[example].Rejected.InputIds.Length;

    public void MicroBatch(int[] examples, double denominator, bool idle = false)
    {
        using var scope = NewDisposeScope();
        var dpo = Compute(_train, _refLogps, examples);
        using Scalar scale = idle ? double.PositiveInfinity : denominator;   // held, not an implicit temporary (see AdamW.Update)
        ObjectiveContext.Backward(dpo.Losses.sum().div(scale));
        if (!idle) _sums += Sums.Of(dpo);
    }

    /// <summary>Sums over the data-parallel replicas only: within an SP group every rank already holds the
    /// same full-sequence figures.</summary>
    public ObjectiveFigures ReduceStep(double denominator)
    {
        var r = _c.Rank.Dp.SumDoubles(_sums.Loss, _sums.Chosen, _sums.Rejected, _sums.Correct, _sums.Margin);
        _sums = default;
        double pairs = denominator;
        return new ObjectiveFigures(r[0] / pairs, 0, new PreferenceMetrics(r[1] / pairs, r[2] / pairs, r[3] / pairs, r[4] / pairs));
    }

    public (double LossSum, double Count) EvaluateBatch(int[] examples)
    {
        var dpo = Compute(_val, _valRefLogps, examples);
        // Every rank of an SP group holds the same loss: only its first rank counts it.
        return _c.Rank.SpRank == 0 ? (dpo.Losses.sum().ToDouble(), examples.Length) : (0, 0);
    }

    /// <summary>The DPO losses and rewards of some pairs, chosen rows first, then rejected rows, in one batch
    /// (as LLaMA-Factory's pairwise collator does).</summary>
    private DpoLoss.Result Compute(IReadOnlyList<EncodedPair> pairs, double[,]? precomputed, int[] examples)
    {
        int b = examples.Length;
        using var batch = _c.Collator.CollatePairs(examples.Select(i => pairs[i]).ToList());
        var (ids, labels, pos) = _c.Shard(batch);
        var policy = SequenceLogps(_c.Model, ids, labels, pos);                                 // (2B), full-sequence sums
        var reference = precomputed is not null ? Precomputed(precomputed, examples, policy.dtype) : ReferenceLogps(ids, labels, pos);
        return DpoLoss.Compute(policy[..b], policy[b..], reference[..b], reference[b..], _c.Spec.PrefBeta);
    }

    /// <summary>
    /// Full-sequence log-prob sums from this rank's shard: each rank sums its own tokens, the group adds
    /// the sums (logits are never gathered). The all-reduce is spliced in as a constant offset, so the
    /// backward pass sends each rank's gradient through its own tokens only — and the gradient sum over
    /// the group afterwards is exactly the single-device gradient.
    /// </summary>
    private Tensor SequenceLogps(CausalLM model, Tensor ids, Tensor labels, Tensor pos)
    {
        var local = -ObjectiveContext.TokenNll(model, ids, labels, pos).sum(1);              // (rows)
        if (_c.Rank.Sp.WorldSize == 1) return local;
        var detached = local.detach();
        var total = detached.clone();
        _c.Rank.Sp.AllReduceSum(total);
        return local + (total - detached);
    }

    private Tensor ReferenceLogps(Tensor ids, Tensor labels, Tensor pos)
    {
        using var _ = no_grad();
        if (_reference is not null) return SequenceLogps(_reference, ids, labels, pos).detach();
        using var off = LoraAdapters.Disabled(_c.Model);                                      // LoRA: the base model is the reference
        return SequenceLogps(_c.Model, ids, labels, pos).detach();
    }

    /// <summary>Precomputed reference log-probs of some pairs as one (2B) tensor: chosen rows, then rejected rows.</summary>
    private static Tensor Precomputed(double[,] logps, int[] pairs, ScalarType dtype) =>
        tensor(pairs.Select(i => logps[i, 0]).Concat(pairs.Select(i => logps[i, 1])).ToArray(), ScalarType.Float64).to(dtype);

    private double[,] PrecomputeReferenceLogps(IReadOnlyList<EncodedPair> pairs)
    {
        var result = new double[pairs.Count, 2];
        int bs = _c.Spec.PerDeviceEvalBatchSize;
        for (int start = 0; start < pairs.Count; start += bs)
        {
            using var scope = NewDisposeScope();
            var idx = Enumerable.Range(start, Math.Min(bs, pairs.Count - start)).ToArray();
            using var batch = _c.Collator.CollatePairs(idx.Select(i => pairs[i]).ToList());
            var (ids, labels, pos) = _c.Shard(batch);
            var logps = ReferenceLogps(ids, labels, pos).to(ScalarType.Float64).data<double>().ToArray();
            for (int k = 0; k < idx.Length; k++) { result[idx[k], 0] = logps[k]; result[idx[k], 1] = logps[idx.Length + k]; }
        }
        return result;
    }
}
