using LongSeqService.Shared.Hosts;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;
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
        // Slots held by a job that no longer holds slots there (or by anyone on a lost host): release them. A world
        // that spans hosts holds slots on each of its hosts while its attempt runs.
        changed += await db.HostSlots.Where(s => s.JobId != null &&
                (!db.Jobs.Any(j => j.Id == s.JobId && JobStates.HoldingSlots.Contains(j.State) && (j.HostId == s.HostId || j.SpanHostIds.Contains(s.HostId)))
                 || db.Hosts.Any(h => h.Id == s.HostId && h.State == HostStates.Lost)))
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null), ct);
        clock.Succeeded();

        if (changed > 0) placement.Request();
        return changed;
    }

    /// <summary>Requeues (or finishes cancelling) every run placed on a lost host, or on <paramref name="host"/>
    /// (it registered again, so its runs died with it; or it heartbeated after being declared lost). A world that
    /// spans hosts is lost with any of its hosts: its whole attempt goes, and its slots on every host are released.</summary>
    public async Task<int> RequeueRunsOfLostHostsAsync(CancellationToken ct = default, int? host = null, string? why = null)
    {
        int given = host ?? 0;   // host ids start at 1
        var runs = await db.Jobs.AsNoTracking()
            .Where(j => JobStates.HoldingSlots.Contains(j.State) && j.HostId != null
                        && (j.HostId == given || j.SpanHostIds.Contains(given)
                            || db.Hosts.Any(h => (h.Id == j.HostId || j.SpanHostIds.Contains(h.Id)) && h.State == HostStates.Lost)))
            .Select(j => new { j.Id, j.State, j.HostId, j.SpanHostIds, j.Attempt }).ToListAsync(ct);
        var lost = runs.Count == 0 ? [] : (await db.Hosts.AsNoTracking().Where(h => h.State == HostStates.Lost).Select(h => h.Id).ToListAsync(ct)).ToHashSet();
        int changed = 0;
        foreach (var run in runs)
        {
            int[] hosts = [run.HostId!.Value, .. run.SpanHostIds];
            var gone = hosts.Contains(given) ? given : hosts.FirstOrDefault(lost.Contains, hosts[0]);
            var reason = gone == given && why != null ? why : $"host {gone} lost (no heartbeat)";
            if (run.SpanHostIds.Length > 0) reason += $" (one of the {hosts.Length} hosts of its world: {string.Join(", ", hosts)})";
            bool moved = run.State == JobStates.Cancelling
                ? await jobs.TryMoveAsync(run.Id, run.State, JobStates.Cancelled, reason + " while cancelling")
                : run.State == JobStates.Pausing   // it was being paused: paused it is, resumable from its newest checkpoint
                ? await jobs.TryMoveAsync(run.Id, run.State, JobStates.Paused, reason + " while pausing; resumes from its newest checkpoint",
                    Unplace, q => q.Where(j => j.Attempt == run.Attempt), ct)
                : await jobs.TryMoveAsync(run.Id, run.State, JobStates.Queued, reason + $"; attempt {run.Attempt} requeued, resumes from its newest checkpoint",
                    Unplace, q => q.Where(j => j.Attempt == run.Attempt), ct);
            if (moved) changed++;
        }
        return changed;
    }

    /// <summary>The run is on no host any more (its slots are released with the move).</summary>
    private static void Unplace(UpdateSettersBuilder<Job> s) => s.SetProperty(j => j.HostId, (int?)null).SetProperty(j => j.SpanHostIds, Array.Empty<int>());
}

/// <summary>The Hangfire job around the liveness sweep.</summary>
public sealed class LivenessJob(LivenessCheck check)
{
    [Hangfire.DisableConcurrentExecution(timeoutInSeconds: 60)]
    [Hangfire.AutomaticRetry(Attempts = 0)]
    public Task RunAsync(CancellationToken cancellationToken) => check.RunAsync(cancellationToken);
}
