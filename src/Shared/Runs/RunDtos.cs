using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Runs;

/// <summary>The host asks to start attempt N of a job it was assigned.</summary>
public sealed record StartRunRequest(int Attempt);

/// <summary>What the host needs to launch the trainer. Paths are on the artifact store, which the
/// host and the API share (LONGSEQ_DATA_DIR); a remote host would download the dataset and upload the
/// output instead (not implemented).</summary>
public sealed record StartRunResponse(Guid JobId, int Attempt, JobSpec Spec, string DatasetPath, string RunDir, string OutputDir);

public static class RunOutcomes
{
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
}

/// <summary>The host reports how a run ended.</summary>
public sealed record FinishRunRequest(int Attempt, string Outcome, int? ExitCode, string? Error);
