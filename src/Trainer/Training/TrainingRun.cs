using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>Receives progress on the main rank (the CLI's progress bar, the host's forwarder, the benchmark).</summary>
public interface ITrainingObserver
{
    void OnStart(int firstStep, int totalSteps) { }
    void OnStep(ProgressInfo progress, StepMetrics metrics) { }
    void OnLog(JsonObject record) { }
    void OnCheckpoint(int step, string path) { }
}

/// <summary>What a run leaves in memory: the step figures, and on request the first step's summed
/// gradient and the final parameters (flat, float64, main rank) for parity checks; attention time per rank.</summary>
public sealed record RunResult(IReadOnlyList<StepMetrics> History, double[]? FirstGradient, double[]? FinalParameters, AttentionTimer[] RankAttention)
{
    /// <summary>Every rank's model-state bytes at the end: (weights, gradients, optimizer state), in world order.</summary>
    public long[][] RankModelStateBytes { get; init; } = [];

    /// <summary>The main rank's wall time inside the model-state collectives (gradient sum, norm, weight gather), all steps.</summary>
    public double StateCommunicationSeconds { get; init; }
}

/// <summary>Options for runs that are checks rather than jobs (parity, bench): no files, captured tensors, and the
/// working-set knobs that a job takes from their rules (<see cref="Shared.Memory.LossChunk"/>, <see cref="Model.Mlp.DefaultTileTokens"/>).</summary>
/// <param name="StopAboveRankBytes">Ranks as processes: end the launch as soon as a rank's resident memory passes
/// this (<see cref="RankMemoryLimitException"/>) — a probe of <c>--find-max-len</c> that is over its limit need not
/// finish its step, nor take the machine's memory with it.</param>
public sealed record RunOptions(bool CaptureFirstGradient = false, bool CaptureFinalParameters = false, int? IntraOpThreadsPerRank = null,
    int? LossChunkTokens = null, int? MlpTileTokens = null, long? StopAboveRankBytes = null);

/// <summary>
/// A whole training run: sequence_parallel_size × data_parallel_size ranks over the prepared data, the
/// main rank writing logs, checkpoints and the final model (when the run has an output_dir).
/// Everything that can be refused was refused by <see cref="RunPreparation"/> before this starts.
/// </summary>
public sealed class TrainingRun(PreparedRun prep, ITrainingObserver? observer = null, RunOptions? options = null)
{
    private readonly JobSpec _spec = prep.Spec;
    private readonly RunOptions _options = options ?? new RunOptions();

    /// <summary>Runs every rank — as threads of this process, or with <c>launch: processes</c> as one process
    /// per rank under mpiexec (<see cref="RankProcessLauncher"/>) — and returns the main rank's figures.</summary>
    public RunResult Execute()
    {
        if (_spec.Launch == Launch.Processes) return RankProcessLauncher.Run(prep, observer, _options);
        var body = new RankRun(prep, _options, observer);
        var timers = Enumerable.Range(0, _spec.WorldSize).Select(_ => new AttentionTimer()).ToArray();
        var outcomes = InProcessWorld.Run(_spec.WorldSize, world => body.Run(world, timers[world.Rank], ownProcess: false));
        var main = outcomes[0];
        return new RunResult(main.History, main.FirstGradient, main.FinalParameters, timers) { RankModelStateBytes = main.RankModelStateBytes, StateCommunicationSeconds = main.StateCommunicationSeconds };
    }
}
