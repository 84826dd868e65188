using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Tests.Training;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>
/// ZeRO over rank processes (mpiexec, SP 2 × DP 2): stages 1 and 2 against stage 0 on threads — the
/// collectives give the same bits in both worlds, so stage 1 is stage 0's bits and stage 2 agrees to
/// float64 rounding — and each process holds its measured share of the model states. A checkpoint whose
/// partitions were written by four processes resumes on threads to the straight run's bits.
/// </summary>
public class ZeroProcessTests
{
    [MpiFact]
    [Trait("Category", "Slow")]
    public void ZeroStages_RanksAsProcesses_MatchStage0AndHoldTheirShare()
    {
        var spec = new JobSpec
        {
            ModelNameOrPath = "builtin:tiny-llama", Dataset = "(synthetic)", SequenceParallelSize = 2, DataParallelSize = 2,
            PerDeviceTrainBatchSize = 1, MaxSteps = 2, CutoffLen = 203, LearningRate = 1e-2, LrSchedulerType = LrSchedulerType.Constant, LoggingSteps = 1,
            MaxGradNorm = 1.0, WeightDecay = 0.01, GradientCheckpointing = true,
        };
        var data = new SyntheticRecipe(Count: 4, SeqLen: 203, Vocab: BuiltinModels.VocabSize, ExactLength: false);
        var options = new RunOptions(CaptureFirstGradient: true, CaptureFinalParameters: true);
        var zero = new TrainingRun(data.Prepare(spec, ScalarType.Float64), options: options).Execute();

        var one = new TrainingRun(data.Prepare(spec with { ZeroStage = 1, Launch = Launch.Processes }, ScalarType.Float64), options: options).Execute();
        var two = new TrainingRun(data.Prepare(spec with { ZeroStage = 2, Launch = Launch.Processes }, ScalarType.Float64), options: options).Execute();

        Assert.True(zero.FinalParameters!.AsSpan().SequenceEqual(one.FinalParameters!), "stage 1 over processes: not stage 0's bits");
        Assert.True(zero.FirstGradient!.AsSpan().SequenceEqual(two.FirstGradient!), "stage 2 over processes: the gradient is not stage 0's bits");
        double rel = ZeroStageTests.MaxRelativeDifference(zero.FinalParameters!, two.FinalParameters!);
        Assert.True(rel <= 1e-12, $"stage 2 over processes: max |θ₂ − θ₀| / max |θ₀| = {rel:E3}");
        // float64: 8 bytes a weight, a gradient (stage 2: 1/4 of them) and two moments of 1/4 of them.
        long p = zero.FinalParameters!.Length;
        Assert.Equal(4, two.RankModelStateBytes.Length);
        foreach (var (rank, expected) in one.RankModelStateBytes.Select(r => (r, 16.0 * p + 16.0 * p / 4))
                     .Concat(two.RankModelStateBytes.Select(r => (r, 8.0 * p + 24.0 * p / 4))))
            Assert.True(Math.Abs(rank.Sum() - expected) <= 0.05 * expected, $"a rank process holds {rank.Sum()} bytes ({string.Join(", ", rank)}), expected {expected:F0}");
    }

    /// <summary>Stage 3 over four rank processes — each unit's weights all-gathered and its gradient reduce-scattered
    /// through MPI — against stage 0 on threads: SFT full fine-tuning (the summed gradient is stage 0's bits; each
    /// process holds 32·P/W bytes in float64: its slice of the weights, gradients and two moments) and DPO with
    /// LoRA (the frozen base partitioned too; the reference pass is the gathered base model).</summary>
    [MpiFact]
    [Trait("Category", "Slow")]
    public void ZeroStage3_RanksAsProcesses_MatchStage0AndHoldTheirShare()
    {
        var sft = new JobSpec
        {
            ModelNameOrPath = "builtin:tiny-llama", Dataset = "(synthetic)", SequenceParallelSize = 2, DataParallelSize = 2,
            PerDeviceTrainBatchSize = 1, MaxSteps = 2, CutoffLen = 203, LearningRate = 1e-2, LrSchedulerType = LrSchedulerType.Constant, LoggingSteps = 1,
            MaxGradNorm = 1.0, WeightDecay = 0.01, GradientCheckpointing = true,
        };
        var dpo = sft with { Stage = Stage.Dpo, FinetuningType = FinetuningType.Lora, LoraTarget = "all", LoraRank = 4, PrefBeta = 0.5 };
        var data = new SyntheticRecipe(Count: 4, SeqLen: 203, Vocab: BuiltinModels.VocabSize, ExactLength: false);
        var options = new RunOptions(CaptureFirstGradient: true, CaptureFinalParameters: true);
        foreach (var spec in new[] { sft, dpo })
        {
            var zero = new TrainingRun(data.Prepare(spec, ScalarType.Float64), options: options).Execute();
            var three = new TrainingRun(data.Prepare(spec with { ZeroStage = 3, Launch = Launch.Processes }, ScalarType.Float64), options: options).Execute();

            Assert.Equal(zero.History.Select(h => h.Loss), three.History.Select(h => h.Loss), (a, b) => Math.Abs(a - b) <= 1e-12 * Math.Abs(a));
            double rel = ZeroStageTests.MaxRelativeDifference(zero.FinalParameters!, three.FinalParameters!);
            Assert.True(rel <= 1e-12, $"stage 3 over processes ({spec.Stage}): max |θ₃ − θ₀| / max |θ₀| = {rel:E3}");
            if (spec.FinetuningType == FinetuningType.Full)
            {
                Assert.True(zero.FirstGradient!.AsSpan().SequenceEqual(three.FirstGradient!), "stage 3 over processes: the gradient is not stage 0's bits");
                long p = zero.FinalParameters!.Length;
                Assert.Equal(4, three.RankModelStateBytes.Length);
                foreach (var rank in three.RankModelStateBytes)
                    Assert.True(Math.Abs(rank.Sum() - 32.0 * p / 4) <= 0.05 * 32.0 * p / 4, $"a rank process holds {rank.Sum()} bytes ({string.Join(", ", rank)}), expected {32.0 * p / 4:F0}");
            }
        }
    }

    [MpiFact]
    [Trait("Category", "Slow")]
    public void CheckpointWrittenByRankProcesses_ResumesOnThreadsToTheStraightRunsBits()
    {
        using var dirs = new RunDirs();
        var straightDir = dirs.Path("straight");
        JobSpec Spec(string dir) => RunDirs.Sft(dir) with { ZeroStage = 2, SequenceParallelSize = 2, DataParallelSize = 2 };
        var straight = RunDirs.Train(Spec(straightDir) with { Launch = Launch.Processes });

        var resumed = RunDirs.Train(Spec(dirs.Path("other")) with { ResumeFromCheckpoint = Path.Combine(straightDir, "checkpoint-2") });

        Assert.Equal(4, Directory.GetFiles(Path.Combine(straightDir, "checkpoint-2"), "optimizer-*.safetensors").Length);
        Assert.Equal(2, resumed.History.Count);
        Assert.True(straight.FinalParameters!.AsSpan().SequenceEqual(resumed.FinalParameters!), "final parameters differ");
    }
}
