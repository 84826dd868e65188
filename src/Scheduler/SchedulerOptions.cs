namespace LongSeqService.Scheduler;

/// <summary>Scheduler settings (configuration section "Scheduler").</summary>
public sealed class SchedulerOptions
{
    /// <summary>How often hosts heartbeat (told to them at registration).</summary>
    public int HeartbeatSeconds { get; set; } = 3;
    /// <summary>A host silent this long is lost: its slots are released and its runs requeued.</summary>
    public int HostTimeoutSeconds { get; set; } = 20;
    /// <summary>How often the liveness check runs (Hangfire cron; six fields = with seconds).</summary>
    public string LivenessCron { get; set; } = "*/5 * * * * *";
    /// <summary>Safety net: a placement pass at least this often, whatever triggered one.</summary>
    public string PlacementCron { get; set; } = "*/30 * * * * *";
    /// <summary>After a gap in the liveness sweeps longer than this (the process started, or the database
    /// was away), nobody is declared lost for <see cref="LivenessGraceSeconds"/>. Default: half the host timeout.</summary>
    public int? LivenessGapSeconds { get; set; }
    /// <summary>How long after such a gap hosts get to be heard again. Default: the host timeout.</summary>
    public int? LivenessGraceSeconds { get; set; }
    /// <summary>How long a host a spanning world lost (or could not reach) is kept out of spanning worlds, the first time
    /// since it registered; each further hold doubles it, up to <see cref="LostHostHoldMaxSeconds"/>.</summary>
    public int LostHostHoldSeconds { get; set; } = 60;
    public int LostHostHoldMaxSeconds { get; set; } = 1800;
    /// <summary>A job whose attempts were requeued this many times in a row without training past the step they started
    /// from fails, naming the last reason (0: never).</summary>
    public int MaxStalledAttempts { get; set; } = 5;
    /// <summary>Run the Hangfire server for the scheduler queue in this process.</summary>
    public bool RunServer { get; set; } = true;
    /// <summary>Register the recurring liveness / placement jobs.</summary>
    public bool RecurringJobs { get; set; } = true;
    public const string Queue = "scheduler";
}
