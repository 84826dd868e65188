namespace LongSeqService.Shared.Jobs;

/// <summary>A job's life: validating → queued → scheduled → running → succeeded | failed | cancelled,
/// with cancelling between a running job and cancelled. A running job can be paused: pausing (its trainer
/// saves a checkpoint and exits) → paused (no slots); resuming puts it back to queued, and it continues from
/// that checkpoint. Plain strings on the wire and in the database.</summary>
public static class JobStates
{
    public const string Validating = "validating";
    public const string Queued = "queued";
    public const string Scheduled = "scheduled";
    public const string Running = "running";
    public const string Cancelling = "cancelling";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Pausing = "pausing";
    public const string Paused = "paused";

    public static readonly string[] All = [Validating, Queued, Scheduled, Running, Cancelling, Pausing, Paused, Succeeded, Failed, Cancelled];
    public static readonly string[] Terminal = [Succeeded, Failed, Cancelled];
    /// <summary>States in which the job holds slots on a host.</summary>
    public static readonly string[] HoldingSlots = [Scheduled, Running, Cancelling, Pausing];

    public static bool IsTerminal(string state) => Terminal.Contains(state);
}
