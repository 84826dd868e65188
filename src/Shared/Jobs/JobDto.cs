namespace LongSeqService.Shared.Jobs;

/// <summary>A job as clients see it: its state, where it runs, and its live progress figures
/// (the newest logged step), so a list view needs no second request.</summary>
public sealed record JobDto(
    Guid Id,
    string State,
    string Model,
    string Stage,
    string DatasetId,
    int SequenceParallelSize,
    int DataParallelSize,
    int WorldSize,
    int Priority,
    string? IdempotencyKey,
    int Attempt,
    int? HostId,
    int? CurrentStep,
    int? TotalSteps,
    double? Progress,
    double? Loss,
    double? TokensPerSec,
    long? TrainedTokens,
    DateTimeOffset? EstimatedFinish,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    JobSpec Spec);

/// <summary>One page of jobs, newest first.</summary>
public sealed record JobPage(IReadOnlyList<JobDto> Data, int Total, int Offset, int Limit, bool HasMore);

/// <summary>A state transition: when, from what, to what, and why.</summary>
public sealed record JobEventDto(long Id, DateTimeOffset At, string? FromState, string ToState, string Reason);

/// <summary>A checkpoint folder (checkpoint-&lt;step&gt;) that training can resume from.</summary>
public sealed record CheckpointDto(int Step, string Path, DateTimeOffset CreatedAt);

/// <summary>A file of the job's output directory; download it at /v1/jobs/{id}/artifacts/{path}.</summary>
public sealed record ArtifactDto(string Path, long SizeBytes, DateTimeOffset ModifiedAt);
