using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Shared.Runs;

/// <summary>The host asks to start attempt N of a job it was leased (listed in a heartbeat's answer).</summary>
/// <param name="Attempt">The attempt the heartbeat's answer leased.</param>
public sealed record StartRunRequest(int Attempt);

/// <summary>What the host needs to launch the trainer. Paths are on the artifact store, which the
/// host and the API share (LONGSEQ_DATA_DIR); a remote host would download the dataset and upload the
/// output instead (not implemented).</summary>
/// <param name="JobId">The job.</param>
/// <param name="Attempt">The attempt now running.</param>
/// <param name="Spec">The spec to train, its model and datasets resolved to paths on the artifact store.</param>
/// <param name="DatasetPath">The training dataset files (comma-joined, in the spec's order).</param>
/// <param name="RunDir">The job's folder on the artifact store (trainer config, logs).</param>
/// <param name="OutputDir">Where the model, trainer_log.jsonl and checkpoints go.</param>
public sealed record StartRunResponse(Guid JobId, int Attempt, JobSpec Spec, string DatasetPath, string RunDir, string OutputDir);

/// <summary>How a run ended, as its host reports it.</summary>
public static class RunOutcomes
{
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    /// <summary>The host stopped the run without an outcome (it is shutting down, or its trainers outlived
    /// their lease): the job goes back to the queue and resumes from its newest checkpoint.</summary>
    public const string Interrupted = "interrupted";
    /// <summary>The trainer honoured a pause: it saved a checkpoint and exited (<see cref="PauseProtocol"/>); the job is paused.</summary>
    public const string Paused = "paused";

    public static readonly string[] All = [Succeeded, Failed, Cancelled, Interrupted, Paused];
}

/// <summary>How a host asks its trainer to pause: it creates the file named by <see cref="FileVariable"/> in the
/// trainer's environment; the trainer checks for it after every optimizer step, saves a checkpoint of that step,
/// writes <c>FILE.done</c> (the step) and exits with <see cref="ExitCode"/>. Resuming is the ordinary resume from
/// the newest checkpoint.</summary>
public static class PauseProtocol
{
    public const string FileVariable = "LONGSEQ_PAUSE_FILE";
    /// <summary>EX_TEMPFAIL: stopped on purpose, to be continued.</summary>
    public const int ExitCode = 75;
    public static string DoneMarker(string pauseFile) => pauseFile + ".done";
}

/// <summary>trainer_log.jsonl records of one attempt. Every report carries the attempt (the fencing
/// token): the API refuses a stale one with 409, and the host then stops that trainer.</summary>
/// <param name="Attempt">The attempt that logged them.</param>
/// <param name="Records">trainer_log.jsonl records, at most 10000.</param>
public sealed record RunMetricsRequest(int Attempt, IReadOnlyList<TrainerLogRecord> Records);

/// <summary>The host reports how a run ended.</summary>
/// <param name="Attempt">The attempt that ended.</param>
/// <param name="Outcome">How it ended.</param>
/// <param name="ExitCode">The trainer's exit code, when it exited.</param>
/// <param name="Error">The trainer's last error line, for a failed run.</param>
public sealed record FinishRunRequest(int Attempt, [property: ClosedSet(typeof(RunOutcomes))] string Outcome, int? ExitCode, string? Error);
