using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LongSeqService.Scheduler.Liveness;

/// <summary>
/// Host liveness, as a sweep that is safe to run any number of times: hosts silent past the timeout
/// are marked lost; every run on a lost host goes back to queued (and resumes from its newest
/// checkpoint when placed again), a cancelling one becomes cancelled; slots nobody should hold are
/// released; runs scheduled long ago that their host never started are dispatched again.
/// </summary>
public sealed class LivenessCheck(ServiceDb db, JobStateMachine jobs, RunDispatcher dispatcher, PlacementTrigger placement,
    IOptions<SchedulerOptions> options, ILogger<LivenessCheck> log)
{
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        var now = DateTime.UtcNow;
        var cutoff = now.AddSeconds(-options.Value.HostTimeoutSeconds);
        int lost = await db.Hosts.Where(h => h.State == HostStates.Online && h.LastHeartbeatAt < cutoff)
            .ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost), ct);
        if (lost > 0) log.LogWarning("{Count} trainer host(s) missed their heartbeats and are lost", lost);

        int changed = await RequeueRunsOfLostHostsAsync(ct);
        // Slots held by a job that no longer holds slots (or by anyone on a lost host): release them.
        changed += await db.HostSlots.Where(s => s.JobId != null &&
                (!db.Jobs.Any(j => j.Id == s.JobId && JobStates.HoldingSlots.Contains(j.State) && j.HostId == s.HostId)
                 || db.Hosts.Any(h => h.Id == s.HostId && h.State == HostStates.Lost)))
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null), ct);

        var stale = now.AddSeconds(-options.Value.RedispatchAfterSeconds);
        var undelivered = await db.Jobs.AsNoTracking()
            .Where(j => j.State == JobStates.Scheduled && j.UpdatedAt < stale && j.HostId != null)
            .Select(j => new { j.Id, j.Attempt, HostId = j.HostId!.Value }).ToListAsync(ct);
        foreach (var j in undelivered) dispatcher.Dispatch(j.Id, j.Attempt, j.HostId);

        if (changed > 0) placement.Request();
        return changed;
    }

    /// <summary>Requeues (or finishes cancelling) every run placed on a lost host, or on a host that
    /// registered again (it restarted, so its runs died with it).</summary>
    public async Task<int> RequeueRunsOfLostHostsAsync(CancellationToken ct = default, int? restartedHost = null)
    {
        var runs = await db.Jobs.AsNoTracking()
            .Where(j => JobStates.HoldingSlots.Contains(j.State) && j.HostId != null
                        && (j.HostId == restartedHost || db.Hosts.Any(h => h.Id == j.HostId && h.State == HostStates.Lost)))
            .Select(j => new { j.Id, j.State, j.HostId, j.Attempt }).ToListAsync(ct);
        int changed = 0;
        foreach (var run in runs)
        {
            var why = restartedHost == run.HostId ? $"host {run.HostId} restarted" : $"host {run.HostId} lost (no heartbeat)";
            bool moved = run.State == JobStates.Cancelling
                ? await jobs.TryMoveAsync(run.Id, run.State, JobStates.Cancelled, why + " while cancelling")
                : await jobs.TryMoveAsync(run.Id, run.State, JobStates.Queued, why + $"; attempt {run.Attempt} requeued, resumes from its newest checkpoint",
                    s => s.SetProperty(j => j.HostId, (int?)null), q => q.Where(j => j.Attempt == run.Attempt), ct);
            if (moved) changed++;
        }
        return changed;
    }
}

/// <summary>The Hangfire job around the liveness sweep.</summary>
public sealed class LivenessJob(LivenessCheck check)
{
    [Hangfire.DisableConcurrentExecution(timeoutInSeconds: 60)]
    [Hangfire.AutomaticRetry(Attempts = 0)]
    public Task RunAsync(CancellationToken cancellationToken) => check.RunAsync(cancellationToken);
}
