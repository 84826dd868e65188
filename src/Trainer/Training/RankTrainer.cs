using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>Where one rank sits: the whole world, its sequence-parallel group and its data-parallel group.</summary>
public sealed record RankContext(ICollectives World, ICollectives Sp, ICollectives Dp, Func<Tensor, Tensor> Shard)
{
    public int SpRank => Sp.Rank;
    public int DpRank => Dp.Rank;
    public bool IsMain => World.Rank == 0;
}

/// <summary>Encoded examples of one split: SFT sequences or preference pairs.</summary>
public sealed record TrainingData(IReadOnlyList<EncodedSequence>? Sft, IReadOnlyList<EncodedPair>? Pairs)
{
    public int Count => Sft?.Count ?? Pairs?.Count ?? 0;
    public static readonly TrainingData Empty = new([], null);
}

/// <summary>The figures of one optimizer step, identical on every rank.</summary>
public sealed record StepMetrics(double Loss, double GradNorm, double Lr, long LabelTokens, long Tokens,
    double? ChosenReward = null, double? RejectedReward = null, double? Accuracy = null, double? Margin = null);

/// <summary>
/// One rank's share of training. Every rank runs the same sequence of forward, backward and collective
/// calls on its own model replica, so the replicas stay bit-identical: gradients are summed over the
/// whole world (sequence shards and data-parallel replicas) in a fixed order before one AdamW update.
/// </summary>
public sealed class RankTrainer : IDisposable
{
    private readonly RankContext _ctx;
    private readonly JobSpec _spec;
    private readonly CausalLM _model;
    private readonly CausalLM? _reference;          // DPO with a full-weight policy and no precomputed log-probs
    private readonly DataSchedule _schedule;
    private readonly LrSchedule _lr;
    private readonly IReadOnlyList<EncodedSequence>? _sft;
    private readonly IReadOnlyList<EncodedPair>? _pairs;
    private readonly TrainingData _val;
    private readonly int[] _labelTokens;             // per SFT example: labels that carry a loss once shifted
    private readonly double[,]? _refLogps;           // precomputed (chosen, rejected) per pair
    private readonly double[,]? _valRefLogps;        // the same for the held-out pairs
    private readonly Collator _collator;
    private readonly Parameter[] _trainable;

    /// <summary>Where the weights' gradients and optimizer state live and how one update runs (zero_stage).</summary>
    public IModelStates States { get; }

    /// <summary>When set, the next step keeps a float64 copy of the summed, unclipped gradient (for parity checks).</summary>
    public bool CaptureNextGradient { get => States.CaptureNextGradient; set => States.CaptureNextGradient = value; }
    public double[]? CapturedGradient => States.CapturedGradient;
    public CausalLM Model => _model;

    public RankTrainer(RankContext ctx, JobSpec spec, CausalLM model, CausalLM? reference, DataSchedule schedule, LrSchedule lr,
        TrainingData train, TrainingData val, int padId)
    {
        (_ctx, _spec, _model, _reference, _schedule, _lr, _sft, _pairs, _val) = (ctx, spec, model, reference, schedule, lr, train.Sft, train.Pairs, val);
        // Labels are shifted before the split (design §4), padded to a multiple of 2·sp for the zigzag chunks.
        _collator = new Collator(padId, 2 * ctx.Sp.WorldSize, shiftLabels: true);
        _labelTokens = train.Sft?.Select(ShiftedLabelCount).ToArray() ?? [];
        var named = model.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        _trainable = named.Select(p => p.parameter).ToArray();
        States = ModelStates.Create(spec.ZeroStage, ctx.World, [.. named.Select(p => (p.name, (Tensor)p.parameter))], spec);
        if (spec.Stage == "dpo" && spec.PrecomputeRefLogps)
        {
            // Without a reference model in memory, the initial weights are the reference only now, before training.
            _refLogps = PrecomputeReferenceLogps(_pairs!);
            if (val.Pairs is { Count: > 0 } valPairs) _valRefLogps = PrecomputeReferenceLogps(valPairs);
        }
    }

    /// <summary>Tokens that carry a loss once labels are shifted: the first token is never predicted.</summary>
    public static int ShiftedLabelCount(EncodedSequence s) => s.Labels.Skip(1).Count(l => l != EncodedSequence.IgnoreIndex);

    /// <summary>Runs optimizer step <paramref name="step"/> (0-based): all micro-batches, the gradient sum, the update.</summary>
    public StepMetrics TrainStep(int step)
    {
        _model.train();
        // LoRA dropout draws from a stream that is a function of (seed, step, rank) only, like the data
        // order: a resumed run replays the straight run's masks, and ranks holding different tokens draw
        // different masks. (The stream lives in the model, not in the checkpointed global RNG state.)
        _model.DropoutRandom.Reseed(unchecked(((long)_spec.Seed * 1_000_003 + step) * 1024 + _ctx.World.Rank));
        using var scope = NewDisposeScope();
        // The loss is normalised by what the whole optimizer step holds — every micro-batch of every
        // data-parallel replica — which is known before any forward pass.
        var micro = Enumerable.Range(0, _schedule.GradientAccumulationSteps)
            .Select(m => Enumerable.Range(0, _ctx.Dp.WorldSize).Select(d => _schedule.Examples(step, m, d)).ToArray()).ToArray();
        double denominator = _spec.Stage == "dpo"
            ? micro.Sum(m => m.Sum(d => d.Length))
            : micro.Sum(m => m.Sum(d => d.Sum(i => (long)_labelTokens[i])));
        denominator = Math.Max(denominator, 1);
        long tokens = micro.Sum(m => m.Sum(d => d.Sum(i => _spec.Stage == "dpo"
            ? (long)_pairs![i].Chosen.InputIds.Length + _pairs[i].Rejected.InputIds.Length
            : _sft![i].InputIds.Length)));

        var sums = new double[6];                   // loss·denominator, (unused), chosen, rejected, correct, margin
        foreach (var m in micro)
        {
            var mine = m[_ctx.DpRank];
            if (mine.Length == 0) continue;         // an epoch's short tail: this replica has nothing, the others do
            if (_spec.Stage == "dpo") DpoMicroBatch(mine, denominator, sums);
            else SftMicroBatch(mine, denominator, sums);
        }

        double lr = _lr.At(step);
        double gradNorm = States.Update(lr);        // sum over the world, clip, update: the zero_stage's strategy
        foreach (var p in _trainable) p.grad = null;

        // Figures: token sums over the whole world; DPO sums are already identical within an SP group.
        using var reduced = tensor(sums, ScalarType.Float64);
        (_spec.Stage == "dpo" ? _ctx.Dp : _ctx.World).AllReduceSum(reduced);
        var r = reduced.data<double>().ToArray();
        if (_spec.Stage == "dpo")
        {
            double pairsInStep = denominator;
            return new StepMetrics(r[0] / denominator, gradNorm, lr, 0, tokens, r[2] / pairsInStep, r[3] / pairsInStep, r[4] / pairsInStep, r[5] / pairsInStep);
        }
        return new StepMetrics(r[0] / denominator, gradNorm, lr, (long)denominator, tokens);
    }

    private void SftMicroBatch(int[] examples, double denominator, double[] sums)
    {
        using var scope = NewDisposeScope();
        using var batch = _collator.Collate(examples.Select(i => _sft![i]).ToList());
        var (ids, labels, pos) = (_ctx.Shard(batch.InputIds), _ctx.Shard(batch.Labels), _ctx.Shard(batch.PositionIds));
        var lossSum = Losses.SftLossSum(_model.Logits(_model.Hidden(ids, pos)), labels);
        using Scalar scale = denominator;          // held, not an implicit temporary (see AdamW.Update)
        lossSum.div(scale).backward();
        sums[0] += ToDouble(lossSum);          // this shard's share; summed over the world afterwards
    }

    private void DpoMicroBatch(int[] examples, double denominator, double[] sums)
    {
        using var scope = NewDisposeScope();
        int b = examples.Length;
        // Chosen rows first, then rejected rows, in one batch (as LLaMA-Factory's pairwise collator does).
        using var batch = _collator.CollatePairs(examples.Select(i => _pairs![i]).ToList());
        var (ids, labels, pos) = (_ctx.Shard(batch.InputIds), _ctx.Shard(batch.Labels), _ctx.Shard(batch.PositionIds));

        var policy = SequenceLogps(_model, ids, labels, pos);                                   // (2B), full-sequence sums
        Tensor reference;
        if (_refLogps is not null) reference = Precomputed(_refLogps, examples, policy.dtype);
        else reference = ReferenceLogps(ids, labels, pos);

        var dpo = DpoLoss.Compute(policy[..b], policy[b..], reference[..b], reference[b..], _spec.PrefBeta);
        using Scalar scale = denominator;          // held, not an implicit temporary (see AdamW.Update)
        dpo.Losses.sum().div(scale).backward();
        sums[0] += ToDouble(dpo.Losses.sum());
        sums[2] += ToDouble(dpo.ChosenRewards.sum());
        sums[3] += ToDouble(dpo.RejectedRewards.sum());
        sums[4] += ToDouble((dpo.ChosenRewards > dpo.RejectedRewards).sum());
        sums[5] += ToDouble((dpo.ChosenRewards - dpo.RejectedRewards).sum());
    }

    /// <summary>
    /// Full-sequence log-prob sums from this rank's shard: each rank sums its own tokens, the group adds
    /// the sums (logits are never gathered). The all-reduce is spliced in as a constant offset, so the
    /// backward pass sends each rank's gradient through its own tokens only — and the gradient sum over
    /// the group afterwards is exactly the single-device gradient.
    /// </summary>
    private Tensor SequenceLogps(CausalLM model, Tensor ids, Tensor labels, Tensor pos)
    {
        var local = Losses.SequenceLogProbs(model.Logits(model.Hidden(ids, pos)), labels);        // (rows)
        if (_ctx.Sp.WorldSize == 1) return local;
        var detached = local.detach();
        var total = detached.clone();
        _ctx.Sp.AllReduceSum(total);
        return local + (total - detached);
    }

    private Tensor ReferenceLogps(Tensor ids, Tensor labels, Tensor pos)
    {
        using var _ = no_grad();
        if (_reference is not null) return SequenceLogps(_reference, ids, labels, pos).detach();
        using var off = LoraAdapters.Disabled(_model);                                            // LoRA: the base model is the reference
        return SequenceLogps(_model, ids, labels, pos).detach();
    }

    /// <summary>Precomputed reference log-probs of some pairs as one (2B) tensor: chosen rows, then rejected rows.</summary>
    private static Tensor Precomputed(double[,] logps, int[] pairs, ScalarType dtype) =>
        tensor(pairs.Select(i => logps[i, 0]).Concat(pairs.Select(i => logps[i, 1])).ToArray(), ScalarType.Float64).to(dtype);

    private double[,] PrecomputeReferenceLogps(IReadOnlyList<EncodedPair> pairs)
    {
        var result = new double[pairs.Count, 2];
        int bs = _spec.PerDeviceEvalBatchSize;
        for (int start = 0; start < pairs.Count; start += bs)
        {
            using var scope = NewDisposeScope();
            var idx = Enumerable.Range(start, Math.Min(bs, pairs.Count - start)).ToArray();
            using var batch = _collator.CollatePairs(idx.Select(i => pairs[i]).ToList());
            var logps = ReferenceLogps(_ctx.Shard(batch.InputIds), _ctx.Shard(batch.Labels), _ctx.Shard(batch.PositionIds))
                .to(ScalarType.Float64).data<double>().ToArray();
            for (int k = 0; k < idx.Length; k++) { result[idx[k], 0] = logps[k]; result[idx[k], 1] = logps[idx.Length + k]; }
        }
        return result;
    }

    /// <summary>Mean loss over the held-out split (SFT: per label token; DPO: per pair), no gradients.
    /// Every rank of the world takes part; data-parallel replicas share the batches out.</summary>
    public double Evaluate()
    {
        _model.eval();
        using var noGrad = no_grad();
        double lossSum = 0, count = 0;
        int bs = _spec.PerDeviceEvalBatchSize, dp = _ctx.Dp.WorldSize;
        for (int start = _ctx.DpRank * bs; start < _val.Count; start += bs * dp)
        {
            using var scope = NewDisposeScope();
            var idx = Enumerable.Range(start, Math.Min(bs, _val.Count - start)).ToArray();
            if (_spec.Stage == "dpo")
            {
                using var batch = _collator.CollatePairs(idx.Select(i => _val.Pairs![i]).ToList());
                var (ids, labels, pos) = (_ctx.Shard(batch.InputIds), _ctx.Shard(batch.Labels), _ctx.Shard(batch.PositionIds));
                var policy = SequenceLogps(_model, ids, labels, pos);
                var reference = _valRefLogps is not null ? Precomputed(_valRefLogps, idx, policy.dtype) : ReferenceLogps(ids, labels, pos);
                int b = idx.Length;
                var dpo = DpoLoss.Compute(policy[..b], policy[b..], reference[..b], reference[b..], _spec.PrefBeta);
                if (_ctx.SpRank == 0) { lossSum += ToDouble(dpo.Losses.sum()); count += b; }
            }
            else
            {
                using var batch = _collator.Collate(idx.Select(i => _val.Sft![i]).ToList());
                var labels = _ctx.Shard(batch.Labels);
                lossSum += ToDouble(Losses.SftLossSum(_model.Logits(_model.Hidden(_ctx.Shard(batch.InputIds), _ctx.Shard(batch.PositionIds))), labels));
                using Scalar ignore = Losses.IgnoreIndex;
                count += labels.ne(ignore).sum().item<long>();
            }
        }
        using var r = tensor(new[] { lossSum, count }, ScalarType.Float64);
        _ctx.World.AllReduceSum(r);
        var v = r.data<double>().ToArray();
        _model.train();
        return v[0] / Math.Max(1, v[1]);
    }

    /// <summary>A scalar tensor of any dtype as a double (item&lt;double&gt; only reads float64 tensors).</summary>
    private static double ToDouble(Tensor scalar) => scalar.to(ScalarType.Float64).item<double>();

    public void Dispose()
    {
        States.Dispose();
        _reference?.Dispose();
    }
}
