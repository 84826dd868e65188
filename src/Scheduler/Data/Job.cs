using System.Text.Json;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Scheduler.Data;

/// <summary>
/// A training job. <see cref="State"/> only changes through guarded updates (JobStateMachine,
/// placement), never by loading and saving the entity. <see cref="Attempt"/> counts placements: a run
/// lost with its host is placed again under a new attempt, so a stale execution can be told apart.
/// </summary>
public sealed class Job
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string State { get; set; }
    /// <summary>The validated spec as JSON (every key, defaults included).</summary>
    public required string Spec { get; set; }
    /// <summary>The model as the tenant named it (builtin:…, shape:…, a registered name, job:&lt;id&gt;…); what the API shows.</summary>
    public required string Model { get; set; }
    /// <summary>What <see cref="Model"/> resolved to at submission (a server path, or the built-in name): for the host only, never shown.
    /// Null on jobs submitted before the registry, whose model was a path already.</summary>
    public string? ModelPath { get; set; }
    public required string Stage { get; set; }
    public required string DatasetId { get; set; }
    public int SequenceParallelSize { get; set; }
    public int DataParallelSize { get; set; }
    public int WorldSize { get; set; }
    /// <summary>Each rank's predicted peak bytes (the memory model, at submission); placement puts the job only on slots that hold it.</summary>
    public long? RankMemoryBytes { get; set; }
    public int Priority { get; set; }
    public string? IdempotencyKey { get; set; }
    /// <summary>OpenAI's <c>suffix</c> (POST /v1/fine_tuning/jobs): a name the tenant gave the fine-tuned model.</summary>
    public string? Suffix { get; set; }
    /// <summary>OpenAI's <c>metadata</c>: up to 16 string pairs, as a JSON object.</summary>
    public string? Metadata { get; set; }
    public int Attempt { get; set; }
    /// <summary>The host whose trainer runs this attempt: the only one that starts it and reports for it. For a world that
    /// spans hosts, the first of them (rank 0; it launches mpiexec over all of them).</summary>
    public int? HostId { get; set; }
    /// <summary>A world that spans hosts: the further hosts after <see cref="HostId"/>, in rank order. Each holds slots for
    /// this attempt and starts nothing itself (the ranks there are started by <see cref="HostId"/>'s mpiexec); losing
    /// any of them loses the attempt. Empty for a run on one host.</summary>
    public int[] SpanHostIds { get; set; } = [];
    public int? CurrentStep { get; set; }
    /// <summary><see cref="CurrentStep"/> when the current attempt started: an attempt requeued without passing it made no progress.</summary>
    public int? StepAtStart { get; set; }
    /// <summary>Attempts in a row requeued without progress; at <see cref="SchedulerOptions.MaxStalledAttempts"/> the job fails
    /// instead (a host that can never fetch its inputs, a world that can never form: no endless requeue).</summary>
    public int StalledAttempts { get; set; }
    public int? TotalSteps { get; set; }
    public double? Loss { get; set; }
    public double? TokensPerSec { get; set; }
    public long? TrainedTokens { get; set; }
    public DateTime? EstimatedFinish { get; set; }
    public string? Error { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }

    /// <summary>The spec a host runs: the tenant's model name replaced by the path it resolved to.</summary>
    public JobSpec RunSpec() => ParsedSpec() with { ModelNameOrPath = ModelPath ?? Model };

    public JobSpec ParsedSpec() => JsonSerializer.Deserialize<JobSpec>(Spec, JobSpecParser.SerializerOptions)!;

    public JobDto ToDto() => new(Id, State, Model, Stage, DatasetId, SequenceParallelSize, DataParallelSize, WorldSize, Priority,
        IdempotencyKey, Attempt, HostId, CurrentStep, TotalSteps,
        CurrentStep is { } s && TotalSteps is > 0 ? Math.Round((double)s / TotalSteps.Value, 4) : State == JobStates.Succeeded ? 1.0 : null,
        Loss, TokensPerSec, TrainedTokens, EstimatedFinish, Error, CreatedAt, UpdatedAt, StartedAt, FinishedAt, ParsedSpec());
}
