using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Training;
using TorchSharp;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// Whole training steps and evaluations (RankTrainer, the fused chunked head + loss, the tiled MLP under
/// checkpointing, SP = 1, 2, 3) against an unfused reference written out here: one rank, whole logits
/// (<see cref="Losses.TokenNll"/>), no checkpointing, SDPA. Float64; chunk and tile sizes that divide nothing.
/// </summary>
public sealed class FusedLossTrainingTests : IDisposable
{
    // One intra-op thread on the test thread and on each rank thread (OpenMP's setting is per thread):
    // spinning workers on shared cores make these tiny passes slow (as in TrainStepReferenceTests).
    private readonly int _threads = get_num_threads();
    public FusedLossTrainingTests() => set_num_threads(1);
    public void Dispose() => set_num_threads(_threads);

    private const string Tied = "builtin:tiny-qwen2";      // tie_word_embeddings: the head is the embedding
    private const string Untied = "builtin:tiny-llama";    // lm_head of its own
    private const int Chunk = 13, Tile = 16;

    /// <summary>One optimizer step over every row (batch 3), so the step's batch is the whole data in some order.</summary>
    private static JobSpec OneStep(string model, string stage, string finetuning, int sp, bool precompute) =>
        Spec(model, stage, finetuning, sp: sp, batch: 3, steps: 1, precompute: precompute) with { PerDeviceEvalBatchSize = 2 };

    private sealed record Figures(double EvalLoss, double Loss, double[] Gradient, PreferenceMetrics? Preference);

    /// <summary>
    /// Moves the policy away from the reference (the initial weights; for LoRA the adapters start at zero),
    /// so DPO's losses and rewards are not the trivial log 2 and 0: every trainable parameter gets a seeded
    /// nudge, in parameter order, the same in both computations.
    /// </summary>
    private static void Nudge(CausalLM policy)
    {
        using var noGrad = no_grad();
        using var g = new Generator(99, CPU);
        foreach (var p in policy.parameters().Where(p => p.requires_grad))
            p.add_(randn(p.shape, dtype: ScalarType.Float64, generator: g).mul(0.05).to(p.dtype));
    }

    /// <summary>The unfused computation on one thread: held-out loss, the step's loss (mean over label tokens or
    /// pairs), its figures and gradient.</summary>
    private static Figures Unfused(JobSpec spec, TrainingData train, TrainingData val)
    {
        using var scope = NewDisposeScope();
        var factory = new ModelFactory(spec, ScalarType.Float64, tokenizerDir: null);
        bool isDpo = train.Pairs is not null;
        var (model, frozen) = factory.Create(new SdpaAttention(), withReference: isDpo && !factory.IsLora);
        model.GradientCheckpointing = false;
        Nudge(model);
        var collator = new Collator(0, 2, shiftLabels: true);

        (Tensor Loss, PreferenceMetrics? Preference) Loss(TrainingData data)
        {
            using var batch = isDpo ? collator.CollatePairs(data.Pairs!) : collator.Collate(data.Sft!);
            Tensor LogProbs(CausalLM m) => Losses.SequenceLogProbs(m.Logits(m.Hidden(batch.InputIds, batch.PositionIds)), batch.Labels);
            if (!isDpo)
            {
                using Scalar ignore = Losses.IgnoreIndex;
                var nll = Losses.TokenNll(model.Logits(model.Hidden(batch.InputIds, batch.PositionIds)), batch.Labels);
                return (nll.sum() / batch.Labels.ne(ignore).sum().to(ScalarType.Float64), null);
            }
            int b = data.Pairs!.Count;
            var policy = LogProbs(model);
            Tensor reference;
            using (no_grad())
            {
                if (frozen is not null) reference = LogProbs(frozen);
                else using (LoraAdapters.Disabled(model)) reference = LogProbs(model);
            }
            var dpo = DpoLoss.Compute(policy[..b], policy[b..], reference[..b], reference[b..], spec.PrefBeta);
            var (c, r) = (dpo.ChosenRewards, dpo.RejectedRewards);
            return (dpo.Losses.mean(), new PreferenceMetrics(c.mean().ToDouble(), r.mean().ToDouble(),
                (c > r).to(ScalarType.Float64).mean().ToDouble(), (c - r).mean().ToDouble()));
        }

        double evalLoss;
        using (no_grad()) evalLoss = Loss(val).Loss.ToDouble();
        var (loss, preference) = Loss(train);
        loss.backward();
        var gradient = cat(model.parameters().Where(p => p.requires_grad).Select(p => p.grad!.flatten()).ToArray()).data<double>().ToArray();
        var result = new Figures(evalLoss, loss.ToDouble(), gradient, preference);
        model.Dispose();
        frozen?.Dispose();
        return result;
    }

    /// <summary>RankTrainer on every rank of an SP group (threads), as RankRun builds it, with small loss chunks and
    /// MLP tiles: Evaluate, then the first step (its summed, unclipped gradient captured).</summary>
    private static Figures Fused(JobSpec spec, TrainingData train, TrainingData val) => InProcessWorld.Run(spec.SequenceParallelSize, world =>
    {
        set_num_threads(1);
        using var scope = NewDisposeScope();
        var shape = Shape(spec.ModelNameOrPath!);
        var plan = SequenceParallelPlan.Create(spec.SequenceParallelMode, spec.SequenceParallelSize, shape.NumAttentionHeads, shape.NumKeyValueHeads, spec.UlyssesDegree);
        var ctx = new RankContext(world, world, world.Split([world.Rank]), full => plan.Shard(full, world.Rank));
        var factory = new ModelFactory(spec, ScalarType.Float64, tokenizerDir: null);
        var (model, reference) = factory.Create(plan.CreateAttention(world), TrainingObjectives.NeedsReferenceModel(spec));
        Assert.True(model.GradientCheckpointing);
        foreach (var m in reference is null ? [model] : new[] { model, reference }) (m.LossChunkTokens, m.MlpTileTokens) = (Chunk, Tile);
        var schedule = new DataSchedule(train.Count, train.Count, 1, 1, 1, 1, spec.Seed);
        using var trainer = new RankTrainer(ctx, spec, model, reference, schedule, LrSchedule.From(LrSchedulerType.Constant, 1e-3, 1, 0, 0), train, val, padId: 0);
        Nudge(model);                                            // after the trainer: precompute_ref_logps saw the initial weights
        double evalLoss = trainer.Evaluate();
        trainer.CaptureNextGradient = true;
        var step = trainer.TrainStep(0);
        model.Dispose();
        return new Figures(evalLoss, step.Loss, trainer.CapturedGradient!, step.Preference);
    })[0];

    private static double RelDiff(double[] a, double[] b) =>
        Math.Sqrt(a.Zip(b, (x, y) => (x - y) * (x - y)).Sum()) / Math.Sqrt(b.Sum(y => y * y));

    private static void AssertRel(double expected, double actual, double rel, string what) =>
        Assert.True(Math.Abs(actual - expected) <= rel * Math.Abs(expected), $"{what}: {actual:R} vs {expected:R}");

    [Theory]
    [InlineData(Tied, "sft", "full", 1, false)]
    [InlineData(Untied, "sft", "full", 2, false)]
    [InlineData(Tied, "sft", "lora", 3, false)]
    [InlineData(Untied, "sft", "full", 3, false)]
    [InlineData(Untied, "dpo", "full", 1, false)]
    [InlineData(Tied, "dpo", "full", 2, true)]
    [InlineData(Untied, "dpo", "lora", 3, false)]
    [InlineData(Tied, "dpo", "full", 3, false)]
    public void FirstStepAndEval_Float64_MatchUnfused(string model, string stage, string finetuning, int sp, bool precompute)
    {
        var spec = OneStep(model, stage, finetuning, sp, precompute);
        var (train, val) = (Rows(spec), Rows(spec, seed: 901, count: 3));

        var expected = Unfused(spec, train, val);
        var actual = Fused(spec, train, val);

        AssertRel(expected.EvalLoss, actual.EvalLoss, 1e-10, "eval loss");
        AssertRel(expected.Loss, actual.Loss, 1e-10, "loss");
        Assert.Equal(expected.Gradient.Length, actual.Gradient.Length);
        double rel = RelDiff(actual.Gradient, expected.Gradient);
        Assert.True(rel <= 1e-10, $"gradient ||g - g_ref|| / ||g_ref|| = {rel:E2}");
        if (stage == "dpo")
        {
            var (e, a) = (expected.Preference!, actual.Preference!);
            Assert.True(Math.Abs(e.Margin) > 1e-3, $"the nudge moved the policy (margin {e.Margin})");
            AssertRel(e.ChosenReward, a.ChosenReward, 1e-10, "rewards/chosen");
            AssertRel(e.RejectedReward, a.RejectedReward, 1e-10, "rewards/rejected");
            AssertRel(e.Margin, a.Margin, 1e-10, "rewards/margins");
            Assert.Equal(e.Accuracy, a.Accuracy);
        }
        else Assert.Null(actual.Preference);
    }
}
