using LongSeqService.Shared.Wire;

namespace LongSeqService.Shared.Jobs;

/// <summary>A job as clients see it: its state, where it runs, and its live progress figures
/// (the newest logged step), so a list view needs no second request.</summary>
/// <param name="Id">The job's id.</param>
/// <param name="State">Where the job is in its life: validating → queued → scheduled → running → succeeded | failed | cancelled (cancelling in between).</param>
/// <param name="Model">The model as the spec named it (builtin:…, shape:…, a registered name, job:&lt;id&gt;…).</param>
/// <param name="Stage">The training stage.</param>
/// <param name="DatasetId">The dataset id (a comma list when the spec names several).</param>
/// <param name="SequenceParallelSize">Ranks that split every sequence (auto resolved at submission).</param>
/// <param name="DataParallelSize">Replicas that see different micro-batches.</param>
/// <param name="WorldSize">Slots the job holds while it runs: sequence_parallel_size × data_parallel_size.</param>
/// <param name="Priority">Higher is placed first (-100 to 100).</param>
/// <param name="IdempotencyKey">The submission's idempotency key, when it gave one.</param>
/// <param name="Attempt">How many times the job was placed (a run lost with its host is placed again).</param>
/// <param name="HostId">The host it is placed on, while it holds slots.</param>
/// <param name="CurrentStep">The newest logged optimizer step.</param>
/// <param name="TotalSteps">Optimizer steps the run will take.</param>
/// <param name="Progress">current_step / total_steps, 0 to 1 (1 once succeeded).</param>
/// <param name="Loss">The training loss at the newest logged step.</param>
/// <param name="TokensPerSec">Training throughput at the newest logged step.</param>
/// <param name="TrainedTokens">Tokens trained on so far.</param>
/// <param name="EstimatedFinish">When the run should finish, from its own steps' pace.</param>
/// <param name="Error">Why it failed (the trainer's last error line), for failed jobs.</param>
/// <param name="CreatedAt">When it was submitted.</param>
/// <param name="UpdatedAt">When its state or progress last changed.</param>
/// <param name="StartedAt">When its first attempt started running.</param>
/// <param name="FinishedAt">When it reached a final state.</param>
/// <param name="Spec">The validated spec, every key with its value (defaults included).</param>
public sealed record JobDto(
    Guid Id,
    [property: ClosedSet(typeof(JobStates))] string State,
    string Model,
    [property: ClosedSet(typeof(Stage))] string Stage,
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

/// <summary>A state transition: when, from what, to what, and why.</summary>
/// <param name="Id">The event's id (increasing; the cursor of the events list).</param>
/// <param name="At">When the transition happened.</param>
/// <param name="FromState">The state before; null for the first event (submitted).</param>
/// <param name="ToState">The state after.</param>
/// <param name="Reason">Why, in words (who cancelled, which host, what failed).</param>
public sealed record JobEventDto(long Id, DateTimeOffset At, [property: ClosedSet(typeof(JobStates))] string? FromState,
    [property: ClosedSet(typeof(JobStates))] string ToState, string Reason);

/// <summary>A checkpoint folder (checkpoint-&lt;step&gt;) that training can resume from.</summary>
/// <param name="Step">The optimizer step it was written after.</param>
/// <param name="Path">Its folder in the output directory (checkpoint-&lt;step&gt;); its files are listed as artifacts below it.</param>
/// <param name="CreatedAt">When the folder was written.</param>
public sealed record CheckpointDto(int Step, string Path, DateTimeOffset CreatedAt);

/// <summary>A file of the job's output directory; download it at /v1/jobs/{id}/artifacts/{path}.</summary>
/// <param name="Path">Its path in the output directory, '/'-separated (checkpoint-6/config.json).</param>
/// <param name="SizeBytes">Its size in bytes.</param>
/// <param name="ModifiedAt">When it was last written.</param>
public sealed record ArtifactDto(string Path, long SizeBytes, DateTimeOffset ModifiedAt);
