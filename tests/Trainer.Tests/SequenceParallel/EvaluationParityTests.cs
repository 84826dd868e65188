using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Training;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.SequenceParallel;

/// <summary>
/// The held-out loss (val split, eval_steps) under sequence and data parallelism against one rank, and the
/// precomputed reference log-probs against a reference model held in memory. The log rounds eval_loss
/// to 6 decimals, so these compare to 1e-6 — far below what a wrong normalisation or reference would give.
/// </summary>
public class EvaluationParityTests
{
    private sealed class LogCapture : ITrainingObserver
    {
        public List<JsonObject> Records { get; } = [];
        public void OnLog(JsonObject record) => Records.Add(record);
    }

    /// <summary>Trains on the spec's rows with 3 more rows held out (eval batch 2: one full batch and a short one), evaluating every step.</summary>
    private static (RunResult Result, double[] EvalLoss) RunWithEval(JobSpec spec, TrainingData train, TrainingData val)
    {
        spec = spec with { EvalSteps = 1, PerDeviceEvalBatchSize = 2 };
        CheckRuns.Validate(spec, Shape(spec.ModelNameOrPath!));
        var prep = new PreparedRun(spec, Shape(spec.ModelNameOrPath!), new ModelFactory(spec, ScalarType.Float64, tokenizerDir: null), null,
            train, val, PadId: 0, Notes: []);
        var log = new LogCapture();
        var result = new TrainingRun(prep, log, new RunOptions(CaptureFirstGradient: true, CaptureFinalParameters: true, IntraOpThreadsPerRank: 1)).Execute();
        return (result, log.Records.Select(r => (double)r["eval_loss"]!).ToArray());
    }

    private static TrainingData HeldOut(JobSpec spec) => Rows(spec with { MaxSteps = 3, PerDeviceTrainBatchSize = 1, GradientAccumulationSteps = 1, DataParallelSize = 1 }, seed: 901);

    [Theory]
    [InlineData("builtin:tiny-llama", "zigzag-ring", 3, 1, "sft", "full")]
    [InlineData("builtin:tiny-qwen2", "hybrid", 4, 1, "sft", "lora")]
    [InlineData("builtin:tiny-llama", "ulysses", 2, 2, "sft", "full")]
    [InlineData("builtin:tiny-qwen2", "ring", 2, 1, "dpo", "full")]
    [InlineData("builtin:tiny-llama", "zigzag-ring", 2, 2, "dpo", "lora")]
    public void EvalLoss_SequenceAndDataParallel_MatchesSingleRank(string model, string mode, int sp, int dp, string stage, string finetuning)
    {
        var spec = Spec(model, stage, finetuning, sp: sp, mode: mode, dp: dp);
        var (train, val) = (Rows(spec), HeldOut(spec));

        var (one, evalOne) = RunWithEval(SingleRank(spec), train, val);
        var (many, evalMany) = RunWithEval(spec, train, val);

        Assert.Equal(spec.MaxSteps, evalOne.Length);
        Assert.All(evalOne, e => Assert.True(e > 0 && double.IsFinite(e)));
        Assert.Equal(evalOne, evalMany, (a, b) => Math.Abs(a - b) <= 1e-6);
        Assert.NotEqual(evalOne[0], evalOne[1]);                                          // it evaluates the trained model
        AssertSame(one, many, spec.MaxSteps, lossAbs: 1e-9, gradRel: 1e-8, paramAbs: 1e-8);
    }

    /// <summary>precompute_ref_logps only changes when the reference log-probs are computed, never their values:
    /// training and evaluation equal a run holding the reference model in memory.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void PrecomputedReference_FullDpo_SameTrainingAndEvalAsReferenceModel(int sp)
    {
        var spec = Spec("builtin:tiny-llama", "dpo", "full", sp: sp);
        var (train, val) = (Rows(spec), HeldOut(spec));

        var (inMemory, evalInMemory) = RunWithEval(spec with { PrecomputeRefLogps = false }, train, val);
        var (precomputed, evalPrecomputed) = RunWithEval(spec with { PrecomputeRefLogps = true }, train, val);

        Assert.Equal(evalInMemory, evalPrecomputed, (a, b) => Math.Abs(a - b) <= 1e-6);
        Assert.All(evalPrecomputed, e => Assert.NotEqual(Math.Log(2), e, 4));             // the reference is the initial model, not the policy
        AssertSame(inMemory, precomputed, spec.MaxSteps, lossAbs: 1e-9, gradRel: 1e-8, paramAbs: 1e-8);   // batches padded differently
    }
}
