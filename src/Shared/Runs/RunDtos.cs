using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Shared.Runs;

/// <summary>The host asks to start attempt N of a job it was leased (listed in a heartbeat's answer).</summary>
/// <param name="Attempt">The attempt the heartbeat's answer leased.</param>
public sealed record StartRunRequest(int Attempt);

/// <summary>What the host needs to launch the trainer. For a host on the shared store (artifacts: shared) the
/// paths are on the store, which it and the API share (LONGSEQ_DATA_DIR). For a host with its own disk
/// (artifacts: remote) they are the store's relative names and <paramref name="Inputs"/> lists what to download.</summary>
/// <param name="JobId">The job.</param>
/// <param name="Attempt">The attempt now running.</param>
/// <param name="Spec">The spec to train, its model and datasets resolved to paths on the artifact store (a remote host: to the names in <paramref name="Inputs"/>).</param>
/// <param name="DatasetPath">The training dataset files (comma-joined, in the spec's order).</param>
/// <param name="RunDir">The job's folder on the artifact store (trainer config, logs).</param>
/// <param name="OutputDir">Where the model, trainer_log.jsonl and checkpoints go.</param>
/// <param name="Inputs">For a remote host only: the run's inputs by content hash (GET …/runs/{job_id}/inputs/{sha256}); null for a shared host.</param>
public sealed record StartRunResponse(Guid JobId, int Attempt, JobSpec Spec, string DatasetPath, string RunDir, string OutputDir, RunInputs? Inputs = null);

/// <summary>One file a remote host downloads by its content hash.</summary>
/// <param name="Path">Its name: a dataset's file name, or a path relative to the model or checkpoint folder (config.json, tokenizer.json).</param>
/// <param name="Sha256">The SHA-256 of its bytes, lowercase hex: the download's address and its check.</param>
/// <param name="SizeBytes">Its size in bytes.</param>
public sealed record InputFile(string Path, string Sha256, long SizeBytes);

/// <summary>What a host with its own disk downloads before it runs: the datasets (in the spec's order), the
/// model folder's files when the model is a registered directory or an earlier job's output (built-in models
/// need none), and the newest complete checkpoint already uploaded, to resume from.</summary>
/// <param name="Datasets">The training dataset files, in the spec's order.</param>
/// <param name="EvalDatasets">The evaluation dataset files, when the spec names any.</param>
/// <param name="Model">The model folder's files, when the model is a folder (a registered model, job:&lt;id&gt;[/checkpoint-N]); null for builtin: models.</param>
/// <param name="Resume">The newest complete checkpoint in the job's output (uploaded by an earlier attempt): the run resumes from it.</param>
public sealed record RunInputs(IReadOnlyList<InputFile> Datasets, IReadOnlyList<InputFile>? EvalDatasets, IReadOnlyList<InputFile>? Model, ResumeCheckpoint? Resume);

/// <summary>A complete checkpoint (it has trainer_state.json) to lay out under the local output folder.</summary>
/// <param name="Name">Its folder name, checkpoint-&lt;step&gt;.</param>
/// <param name="Files">Its files, paths relative to the folder.</param>
public sealed record ResumeCheckpoint(string Name, IReadOnlyList<InputFile> Files);

/// <summary>How much of one output file the API holds (PUT …/runs/{job_id}/outputs/{path}).</summary>
/// <param name="Path">The file's path in the job's output folder.</param>
/// <param name="Received">Bytes received so far: the next PUT sends from this offset.</param>
/// <param name="SizeBytes">The file's whole size.</param>
/// <param name="Complete">True once every byte arrived, its SHA-256 matched and it was moved into the output folder.</param>
public sealed record UploadStatusDto(string Path, long Received, long SizeBytes, bool Complete);

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
/// <param name="LostHost">For an interrupted run whose world spanned hosts: the MPI host name (as in mpi_hosts) of the host
/// the world lost or could not reach. The API holds that host out of spanning worlds for a while (until it registers again),
/// so the requeued job is not placed straight back onto it.</param>
public sealed record FinishRunRequest(int Attempt, [property: ClosedSet(typeof(RunOutcomes))] string Outcome, int? ExitCode, string? Error, string? LostHost = null);
