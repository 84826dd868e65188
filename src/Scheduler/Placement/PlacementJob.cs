using Hangfire;

namespace LongSeqService.Scheduler.Placement;

/// <summary>The Hangfire job around a placement pass. Never runs concurrently with itself (a
/// distributed lock in the Hangfire storage); a pass that fails is not retried, the next trigger or
/// the recurring safety net runs another.</summary>
public sealed class PlacementJob(PlacementPass pass, PlacementTrigger trigger)
{
    [DisableConcurrentExecution(timeoutInSeconds: 120)]
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        trigger.Started();
        await pass.RunAsync(cancellationToken);
    }
}

/// <summary>Asks for a placement pass. Requests that arrive while one is already waiting to start are
/// folded into it (a burst of submissions makes one pass, not one each).</summary>
public sealed class PlacementTrigger(IBackgroundJobClient jobs, TimeProvider clock)
{
    private int _pending;
    private long _lastEnqueuedTicks;

    public void Request()
    {
        var now = clock.GetUtcNow().UtcTicks;
        // The flag is cleared when the pass starts in this process; if passes run elsewhere, at most one request per 2 s gets folded.
        if (Interlocked.Exchange(ref _pending, 1) == 1 && now - Interlocked.Read(ref _lastEnqueuedTicks) < TimeSpan.TicksPerSecond * 2) return;
        Interlocked.Exchange(ref _lastEnqueuedTicks, now);
        jobs.Enqueue<PlacementJob>(SchedulerOptions.Queue, j => j.RunAsync(CancellationToken.None));
    }

    internal void Started() => Interlocked.Exchange(ref _pending, 0);
}
