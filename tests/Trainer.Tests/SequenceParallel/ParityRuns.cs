using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.SequenceParallel;

/// <summary>
/// In-process training runs on synthetic data for the parity tests: no files, the first step's summed
/// gradient and the final parameters captured. Sequence lengths are odd (never a multiple of 2N), rows of
/// a batch differ in length, and the rejected answers of preference pairs differ in length from the chosen.
/// </summary>
internal static class ParityRuns
{
    /// <summary>Lengths of the synthetic rows, cycled; all odd, between 40 and 70 tokens.</summary>
    private static readonly int[] Lengths = [61, 47, 53, 67, 43, 59, 51, 65];

    public static JobSpec Spec(string model, string stage, string finetuning, int sp = 1, string mode = "zigzag-ring", int? ulyssesDegree = null,
        int dp = 1, int batch = 2, int gradAcc = 1, int steps = 2, bool checkpointing = true, bool precompute = false) => new()
    {
        ModelNameOrPath = model, Dataset = "(synthetic)", Stage = WireNames.Parse<Stage>(stage), FinetuningType = WireNames.Parse<FinetuningType>(finetuning), LoraTarget = "all", LoraRank = 4,
        SequenceParallelSize = sp, SequenceParallelMode = WireNames.Parse<SequenceParallelMode>(mode), UlyssesDegree = ulyssesDegree, DataParallelSize = dp,
        PerDeviceTrainBatchSize = batch, GradientAccumulationSteps = gradAcc, MaxSteps = steps, CutoffLen = 128,
        // A large learning rate: the second step's loss and the final parameters move far enough that a
        // wrong update would show. Clipping (by the global norm) and weight decay are on, as in a real run.
        LearningRate = 1e-2, LrSchedulerType = LrSchedulerType.Constant, MaxGradNorm = 1.0, WeightDecay = 0.01, Seed = 7, LoggingSteps = 1,
        GradientCheckpointing = checkpointing, PrecomputeRefLogps = precompute, PrefBeta = 0.5,
    };

    /// <summary>The single-rank reference of a spec: one rank, whole sequences, the same global batch in one micro-batch per step.</summary>
    public static JobSpec SingleRank(JobSpec spec) => spec with
    {
        SequenceParallelSize = 1, SequenceParallelMode = SequenceParallelMode.ZigzagRing, UlyssesDegree = null, DataParallelSize = 1,
        PerDeviceTrainBatchSize = spec.PerDeviceTrainBatchSize * spec.DataParallelSize * spec.GradientAccumulationSteps,
        GradientAccumulationSteps = 1,
    };

    /// <summary>Exactly enough examples for the spec's steps (one epoch), so both runs see the same rows in the same order.</summary>
    public static TrainingData Rows(JobSpec spec, int seed = 11, int? count = null)
    {
        count ??= spec.MaxSteps * spec.PerDeviceTrainBatchSize * spec.GradientAccumulationSteps * spec.DataParallelSize;
        int vocab = CheckRuns.Vocab(Shape(spec.ModelNameOrPath!));
        if (spec.Stage != Stage.Dpo)
            return new TrainingData(Enumerable.Range(0, count.Value).Select(i => SyntheticData.Sft(1, Lengths[i % Lengths.Length], vocab, seed + i, exactLength: true)[0]).ToList(), null);
        var pairs = Enumerable.Range(0, count.Value).Select(i =>
        {
            var p = SyntheticData.Pairs(1, Lengths[i % Lengths.Length], vocab, seed + i, exactLength: true)[0];
            int shorter = p.Rejected.Length - 2;            // still odd, and longer than the shared prompt
            return p with { Rejected = new EncodedSequence(p.Rejected.InputIds[..shorter], p.Rejected.Labels[..shorter]) };
        }).ToList();
        return new TrainingData(null, pairs);
    }

    public static ModelShape Shape(string model) => CheckRuns.Shape(model);

    public static RunResult Run(JobSpec spec, ScalarType dtype, TrainingData data)
    {
        CheckRuns.Validate(spec, Shape(spec.ModelNameOrPath!));
        var prep = CheckRuns.Prepare(spec, Shape(spec.ModelNameOrPath!), dtype, data);
        return new TrainingRun(prep, options: new RunOptions(CaptureFirstGradient: true, CaptureFinalParameters: true, IntraOpThreadsPerRank: 1)).Execute();
    }

    /// <summary>Asserts the three parity figures and that the runs did what they claim (steps, a non-zero gradient).</summary>
    public static void AssertSame(RunResult reference, RunResult other, int steps, double lossAbs, double gradRel, double paramAbs)
    {
        Assert.Equal(steps, reference.History.Count);
        Assert.Equal(steps, other.History.Count);
        Assert.All(reference.History, h => Assert.True(double.IsFinite(h.Loss) && h.Loss > 0, $"loss {h.Loss}"));
        Assert.True(reference.FirstGradient!.Any(g => g != 0), "the reference's first gradient is all zeros");
        Assert.NotEqual(reference.History[0].Loss, reference.History[^1].Loss);      // training moved

        var report = ParityCommand.Compare(reference, other, ScalarType.Float64);
        double loss = report["max_loss_abs_diff"]!.GetValue<double>();
        double grad = report["max_grad_rel_diff"]!.GetValue<double>();
        double param = report["max_param_abs_diff"]!.GetValue<double>();
        Assert.True(loss <= lossAbs, $"max |loss_N - loss_1| = {loss:E3} > {lossAbs:E0}");
        Assert.True(grad <= gradRel, $"||g_N - g_1|| / ||g_1|| = {grad:E3} > {gradRel:E0}");
        Assert.True(param <= paramAbs, $"max |p_N - p_1| = {param:E3} > {paramAbs:E0}");
        for (int s = 0; s < steps; s++)                      // the label-token and token counts of each step agree too
        {
            Assert.Equal(reference.History[s].LabelTokens, other.History[s].LabelTokens);
            Assert.Equal(reference.History[s].Tokens, other.History[s].Tokens);
        }
    }
}
