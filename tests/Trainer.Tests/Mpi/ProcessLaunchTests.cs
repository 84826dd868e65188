using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>
/// Training with <c>launch: processes</c> (one process per rank under mpiexec) against one rank holding
/// whole sequences, in float64, with the in-process tolerances (loss 1e-9, gradient 1e-8 relative,
/// parameters 1e-8). Lengths that don't divide 2N, two optimizer steps.
/// </summary>
public class ProcessLaunchTests
{
    [MpiTheory]
    [InlineData(2, "zigzag-ring")]
    [InlineData(4, "zigzag-ring")]
    [InlineData(4, "ulysses")]
    [Trait("Category", "Slow")]
    public void SequenceParallel_RanksAsProcesses_MatchesOneRank(int sp, string mode)
    {
        var spec = new JobSpec
        {
            ModelNameOrPath = "builtin:tiny-llama", Dataset = "(synthetic)", SequenceParallelSize = sp, SequenceParallelMode = WireNames.Parse<SequenceParallelMode>(mode),
            PerDeviceTrainBatchSize = 2, MaxSteps = 2, CutoffLen = 203, LearningRate = 1e-3, LrSchedulerType = LrSchedulerType.Constant, LoggingSteps = 1,
            Launch = Launch.Processes,
        };
        var data = new SyntheticRecipe(Count: 4, SeqLen: 203, Vocab: BuiltinModels.VocabSize, ExactLength: false);
        var reference = new TrainingRun(data.Prepare(spec with { SequenceParallelSize = 1, SequenceParallelMode = SequenceParallelMode.ZigzagRing, Launch = Launch.Threads }, ScalarType.Float64),
            options: new RunOptions(true, true)).Execute();
        var progress = new Recorder();

        var processes = new TrainingRun(data.Prepare(spec, ScalarType.Float64), progress, new RunOptions(true, true)).Execute();

        var report = ParityCommand.Compare(reference, processes, ScalarType.Float64);
        Assert.True(report["passed"]!.GetValue<bool>(), report.ToJsonString());
        // Progress reached the launching process as it happened, with every rank's own memory figures.
        Assert.Equal(2, progress.Steps);
        Assert.Equal(2, progress.Records.Count);
        var peaks = progress.Records[^1]["rank_peak_bytes"]!.AsArray().Select(x => (long)x!).ToArray();
        var baselines = progress.Records[^1]["rank_baseline_bytes"]!.AsArray().Select(x => (long)x!).ToArray();
        Assert.Equal(sp, peaks.Length);
        Assert.All(baselines, b => Assert.True(b > 50L << 20, $"a rank process with libtorch and a model holds more than {b} bytes"));
        Assert.All(peaks.Zip(baselines), pb => Assert.True(pb.First >= pb.Second));
        Assert.Equal(sp, processes.RankAttention.Length);
        Assert.All(processes.RankAttention, a => Assert.True(a.Total > TimeSpan.Zero));
    }

    private sealed class Recorder : ITrainingObserver
    {
        public int Steps;
        public List<JsonObject> Records { get; } = [];
        public void OnStep(ProgressInfo progress, StepMetrics metrics) => Steps++;
        public void OnLog(JsonObject record) => Records.Add(record);
    }
}
