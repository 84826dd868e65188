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

/// <summary>Encoded examples of one split: SFT sequences, preference pairs, or packed rows of SFT/pt examples.</summary>
public sealed record TrainingData(IReadOnlyList<EncodedSequence>? Sft, IReadOnlyList<EncodedPair>? Pairs, IReadOnlyList<PackedRow>? Packed = null)
{
    public int Count => Packed?.Count ?? Sft?.Count ?? Pairs?.Count ?? 0;

    /// <summary>Tokens each training unit occupies in a batch row: a sequence, a packed row, or a pair's two
    /// rows (padded to the longer answer). What a token budget counts.</summary>
    public IReadOnlyList<int> PaddedRowTokens() =>
        Packed?.Select(r => r.Length).ToArray()
        ?? Sft?.Select(s => s.Length).ToArray()
        ?? Pairs?.Select(p => 2 * Math.Max(p.Chosen.Length, p.Rejected.Length)).ToArray() ?? [];

    public static readonly TrainingData Empty = new([], null);
}

/// <summary>
/// One rank's share of training. Every rank runs the same sequence of forward, backward and collective
/// calls on its own model replica, so the replicas stay bit-identical: gradients are summed over the
/// whole world (sequence shards and data-parallel replicas) in a fixed order before one AdamW update.
/// What is trained — the micro-batch loss, the evaluation, the figures — is the stage's
/// <see cref="ITrainingObjective"/>; this loop is the same for all of them.
/// </summary>
public sealed class RankTrainer : IDisposable
{
    private readonly RankContext _ctx;
    private readonly JobSpec _spec;
    private readonly CausalLM _model;
    private readonly CausalLM? _reference;          // DPO with a full-weight policy and no precomputed log-probs
    private readonly DataSchedule _schedule;
    private readonly LrSchedule _lr;
    private readonly ITrainingObjective _objective;
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
        (_ctx, _spec, _model, _reference, _schedule, _lr) = (ctx, spec, model, reference, schedule, lr);
        // Labels are shifted before the split (design §4), padded to a multiple of 2·sp for the zigzag chunks.
        var collator = new Collator(padId, Collator.SequenceParallelMultiple(ctx.Sp.WorldSize), shiftLabels: true);
        _trainable = [.. model.parameters().Where(p => p.requires_grad)];
        States = ModelStates.Create(spec.ZeroStage, ctx.World, model, reference, spec);
        // Built on the initial weights: with precompute_ref_logps DPO computes its reference log-probs now.
        _objective = TrainingObjectives.Create(new ObjectiveContext(ctx, spec, model, collator), reference, train, val);
    }

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
        var all = micro.SelectMany(m => m.SelectMany(d => d)).ToArray();
        double denominator = Math.Max(all.Sum(_objective.LossWeight), 1);
        long tokens = all.Sum(_objective.Tokens);

        foreach (var m in micro)
        {
            var mine = m[_ctx.DpRank];
            if (mine.Length > 0) _objective.MicroBatch(mine, denominator);
            // An epoch's short tail: this replica has nothing, the others do. Under stage 3 it still takes part
            // in the weight gathers and gradient reduce-scatters, on another replica's examples, contributing zeros.
            else if (States.ZeroStage == 3 && m.FirstOrDefault(d => d.Length > 0) is { } other) _objective.MicroBatch(other, denominator, idle: true);
        }

        double lr = _lr.At(step);
        double gradNorm = States.Update(lr);        // sum over the world, clip, update: the zero_stage's strategy
        foreach (var p in _trainable) p.grad = null;

        var f = _objective.ReduceStep(denominator);
        return new StepMetrics(f.Loss, gradNorm, lr, f.LabelTokens, tokens, f.Preference);
    }

    /// <summary>Mean loss over the held-out split (the objective says per what: label token, pair), no gradients.
    /// Every rank of the world takes part; data-parallel replicas share the batches out.</summary>
    public double Evaluate()
    {
        _model.eval();
        using var noGrad = no_grad();
        double lossSum = 0, count = 0;
        int bs = _spec.PerDeviceEvalBatchSize, dp = _ctx.Dp.WorldSize, n = _objective.ValidationCount;
        // Stage 3 gathers weights over the whole world, so every replica runs as many batches: one whose
        // share has run out evaluates the first batch again and drops the result.
        bool lockstep = States.ZeroStage == 3;
        for (int round = 0; round * bs * dp < n; round++)
        {
            int start = (round * dp + _ctx.DpRank) * bs;
            bool idle = start >= n;
            if (idle && !lockstep) break;
            using var scope = NewDisposeScope();
            var (l, c) = _objective.EvaluateBatch(Enumerable.Range(idle ? 0 : start, Math.Min(bs, n - (idle ? 0 : start))).ToArray());
            if (!idle) (lossSum, count) = (lossSum + l, count + c);
        }
        var v = _ctx.World.SumDoubles(lossSum, count);
        _model.train();
        return v[0] / Math.Max(1, v[1]);
    }

    public void Dispose()
    {
        States.Dispose();
        _reference?.Dispose();
    }
}
