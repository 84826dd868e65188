using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Training;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// Checkpoints under ZeRO: every rank writes its partition of the optimizer state (keyed by parameter name
/// and flat offset), the main rank the consolidated model.safetensors (stage 3 gathers the weights for it). A crash and a resume on the same
/// world gives the straight run's bits; a resume on another world size (or stage) re-partitions the saved
/// state and continues the same training.
/// </summary>
public class ZeroResumeTests
{
    [Theory]
    [InlineData(1, "sft", "full", 2, 1)]
    [InlineData(2, "sft", "full", 2, 1)]
    [InlineData(2, "dpo", "lora", 1, 2)]
    [InlineData(3, "sft", "full", 2, 1)]
    [InlineData(3, "dpo", "lora", 1, 2)]
    public void CrashAfterCheckpointThenResume_EqualsStraightRun(int stage, string method, string finetuning, int sp, int dp)
    {
        using var dirs = new RunDirs();
        var (straightDir, resumedDir) = (dirs.Path("straight"), dirs.Path("resumed"));
        JobSpec SpecFor(string dir) => (method == "dpo" ? RunDirs.Dpo(dir, finetuning) with { GradientCheckpointing = true } : RunDirs.Sft(dir) with { Bf16 = true })
            with { ZeroStage = stage, SequenceParallelSize = sp, DataParallelSize = dp };

        var straight = RunDirs.Train(SpecFor(straightDir));
        Assert.Throws<RankFailedException>(() => RunDirs.Train(SpecFor(resumedDir), new CrashAfterCheckpoint()));
        var resumed = RunDirs.Train(SpecFor(resumedDir) with { ResumeFromCheckpoint = "latest" });

        var checkpoint = Path.Combine(resumedDir, "checkpoint-2");
        var parts = Directory.GetFiles(checkpoint, "optimizer-*.safetensors");
        Assert.Equal(sp * dp, parts.Length);                                                   // one partition per rank
        Assert.True(File.Exists(Path.Combine(checkpoint, "rng_state.safetensors")));
        Assert.False(File.Exists(Path.Combine(checkpoint, "optimizer.safetensors")));
        Assert.Equal(2, resumed.History.Count);
        Assert.Equal(straight.History.Skip(2).Select(h => h.Loss), resumed.History.Select(h => h.Loss));
        Assert.True(straight.FinalParameters!.AsSpan().SequenceEqual(resumed.FinalParameters!), "final parameters differ");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]           // the weights are partitioned: gathered whole for the save
    public void Checkpoint_ZeroStage_ModelSafetensorsIsTheWholeModel(int stage)
    {
        using var dirs = new RunDirs();
        var dir = dirs.Path("run");
        var result = RunDirs.Train(RunDirs.Sft(dir) with { ZeroStage = stage, DataParallelSize = 2 });

        // A plain Hugging Face load of checkpoint-2 and of the final folder: every tensor there, whole.
        foreach (var path in new[] { Path.Combine(dir, "checkpoint-2"), dir })
        {
            var model = ModelLoader.Load(path, ScalarType.Float32, new SdpaAttention()).Model;
            Assert.Equal(result.FinalParameters!.Length, RunDirs.Flatten(model).Length);
        }
        Assert.Equal(result.FinalParameters, RunDirs.Flatten(ModelLoader.Load(dir, ScalarType.Float32, new SdpaAttention()).Model));
    }

    /// <summary>Two steps on one world, a checkpoint, two more on another world size or stage: the same as four
    /// steps straight on the new world (float64; the worlds differ only in the SP rounding, ~1e-12).</summary>
    [Theory]
    [InlineData(2, 2, 4, 2)]      // 2 partitions → 4
    [InlineData(4, 1, 3, 2)]      // 4 → 3, stage 1 → 2 (the cuts move inside tensors)
    [InlineData(2, 2, 1, 0)]      // partitions back into one whole state (optimizer.safetensors' layout)
    [InlineData(1, 0, 2, 2)]      // one whole state cut into partitions
    [InlineData(2, 3, 3, 3)]      // stage 3: 2 partitions of the weights → 3
    [InlineData(3, 3, 1, 0)]      // stage 3's partitions back into one replicated model
    [InlineData(2, 2, 4, 3)]      // stage 2's optimizer partitions into stage 3's
    public void ResumeOnAnotherWorldSize_RepartitionsAndContinuesTheSameRun(int saveSp, int saveStage, int resumeSp, int resumeStage)
    {
        using var dirs = new RunDirs();
        var spec = Spec("builtin:tiny-llama", "sft", "full", steps: 4) with { SaveSteps = 2 };
        var data = Rows(spec);
        var first = spec with { SequenceParallelSize = saveSp, ZeroStage = saveStage, OutputDir = dirs.Path("first") };
        Assert.Throws<RankFailedException>(() => Train(first, data, new CrashAfterCheckpoint()));
        var then = spec with
        {
            SequenceParallelSize = resumeSp, ZeroStage = resumeStage, OutputDir = dirs.Path("then"),
            ResumeFromCheckpoint = Path.Combine(dirs.Path("first"), "checkpoint-2"),
        };

        var resumed = Train(then, data);
        var straight = Train(spec with { SequenceParallelSize = resumeSp, OutputDir = dirs.Path("straight") }, data);

        Assert.Equal(2, resumed.History.Count);
        Assert.Equal(straight.History.Skip(2).Select(h => h.Loss), resumed.History.Select(h => h.Loss), (a, b) => Math.Abs(a - b) <= 1e-9);
        double diff = straight.FinalParameters!.Zip(resumed.FinalParameters!, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-8, $"max |θ_resumed − θ_straight| = {diff:E3}");
    }

    private static RunResult Train(JobSpec spec, TrainingData data, ITrainingObserver? observer = null)
    {
        var prep = new PreparedRun(spec, Shape(spec.ModelNameOrPath!), new ModelFactory(spec, ScalarType.Float64, tokenizerDir: null), spec.OutputDir,
            data, TrainingData.Empty, PadId: 0, Notes: []);
        return new TrainingRun(prep, observer, new RunOptions(CaptureFinalParameters: true, IntraOpThreadsPerRank: 1)).Execute();
    }
}
