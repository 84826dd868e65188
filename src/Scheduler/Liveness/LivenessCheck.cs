using LongSeqService.Shared.Hosts;
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
/// released. Silence is counted only over time this service was listening (<see cref="LivenessClock"/>):
/// the API or the database being away is not the hosts' fault. Runs scheduled on a host are leased to it
/// in its heartbeat's answer, so nothing needs dispatching again.
/// </summary>
public sealed class LivenessCheck(ServiceDb db, JobStateMachine jobs, PlacementTrigger placement, LivenessClock clock,
    IOptions<SchedulerOptions> options, ILogger<LivenessCheck> log)
{
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        var timeout = TimeSpan.FromSeconds(options.Value.HostTimeoutSeconds);
        var listening = clock.Sweep(gap: TimeSpan.FromSeconds(options.Value.LivenessGapSeconds ?? options.Value.HostTimeoutSeconds / 2.0));
        var now = DateTime.UtcNow;
        int lost = 0;
        if (now - listening >= TimeSpan.FromSeconds(options.Value.LivenessGraceSeconds ?? options.Value.HostTimeoutSeconds))
        {
            var cutoff = now - timeout;
            lost = await db.Hosts.Where(h => h.State == HostStates.Online && h.LastHeartbeatAt < cutoff)
                .ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost), ct);
        }
        if (lost > 0) log.LogWarning("{Count} trainer host(s) missed their heartbeats and are lost", lost);

        int changed = await RequeueRunsOfLostHostsAsync(ct);
        // Slots held by a job that no longer holds slots (or by anyone on a lost host): release them.
        changed += await db.HostSlots.Where(s => s.JobId != null &&
                (!db.Jobs.Any(j => j.Id == s.JobId && JobStates.HoldingSlots.Contains(j.State) && j.HostId == s.HostId)
                 || db.Hosts.Any(h => h.Id == s.HostId && h.State == HostStates.Lost)))
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null), ct);
        clock.Succeeded();

        if (changed > 0) placement.Request();
        return changed;
    }

    /// <summary>Requeues (or finishes cancelling) every run placed on a lost host, or on <paramref name="host"/>
    /// (it registered again, so its runs died with it; or it heartbeated after being declared lost).</summary>
    public async Task<int> RequeueRunsOfLostHostsAsync(CancellationToken ct = default, int? host = null, string? why = null)
    {
        var runs = await db.Jobs.AsNoTracking()
            .Where(j => JobStates.HoldingSlots.Contains(j.State) && j.HostId != null
                        && (j.HostId == host || db.Hosts.Any(h => h.Id == j.HostId && h.State == HostStates.Lost)))
            .Select(j => new { j.Id, j.State, j.HostId, j.Attempt }).ToListAsync(ct);
        int changed = 0;
        foreach (var run in runs)
        {
            var reason = host == run.HostId && why != null ? why : $"host {run.HostId} lost (no heartbeat)";
            bool moved = run.State == JobStates.Cancelling
                ? await jobs.TryMoveAsync(run.Id, run.State, JobStates.Cancelled, reason + " while cancelling")
                : run.State == JobStates.Pausing   // it was being paused: paused it is, resumable from its newest checkpoint
                ? await jobs.TryMoveAsync(run.Id, run.State, JobStates.Paused, reason + " while pausing; resumes from its newest checkpoint",
                    s => s.SetProperty(j => j.HostId, (int?)null), q => q.Where(j => j.Attempt == run.Attempt), ct)
                : await jobs.TryMoveAsync(run.Id, run.State, JobStates.Queued, reason + $"; attempt {run.Attempt} requeued, resumes from its newest checkpoint",
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
