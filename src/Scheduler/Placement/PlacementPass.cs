using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Scheduler.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace LongSeqService.Scheduler.Placement;

/// <summary>
/// One placement pass: snapshot the online hosts' free slots and the queued jobs, plan with the pure
/// <see cref="PlacementSteps"/>, then bind each decision in its own transaction. Binding is
/// all-or-nothing and safe against a concurrent pass: the job moves queued → scheduled only if it is
/// still queued, and its slots are taken only where <c>job_id IS NULL</c>; if either takes fewer rows
/// than planned the transaction rolls back (PostgreSQL's row locks make the loser wait, then re-check).
/// </summary>
public sealed class PlacementPass(ServiceDb db, RunDispatcher dispatcher, IJobNotifier notifier, ILogger<PlacementPass> log)
{
    public async Task<IReadOnlyList<Binding>> RunAsync(CancellationToken ct = default)
    {
        var hosts = await db.Hosts.AsNoTracking().Where(h => h.State == HostStates.Online)
            .Select(h => new HostSnapshot(h.Id, h.Slots.Where(s => s.JobId == null).Select(s => s.Index).ToList(), h.Slots.Count))
            .ToListAsync(ct);
        if (hosts.All(h => h.FreeSlots.Count == 0)) return [];
        var queue = await db.Jobs.AsNoTracking().Where(j => j.State == JobStates.Queued)
            .OrderByDescending(j => j.Priority).ThenBy(j => j.CreatedAt).Take(10_000)
            .Select(j => new PendingJob(j.Id, j.SequenceParallelSize, j.DataParallelSize, j.Priority, j.CreatedAt))
            .ToListAsync(ct);
        var bound = new List<Binding>();
        foreach (var binding in PlacementSteps.Plan(queue, hosts))
        {
            var attempt = await TryBindAsync(binding, ct);
            if (attempt is not { } a) continue;
            bound.Add(binding);
            dispatcher.Dispatch(binding.JobId, a.Attempt, binding.HostId);
            await notifier.StateChangedAsync(a.TenantId, new JobStateMessage(binding.JobId, JobStates.Scheduled, JobStates.Queued, a.Reason, a.At));
        }
        if (bound.Count > 0) log.LogInformation("placement bound {Count} of {Queued} queued jobs", bound.Count, queue.Count);
        return bound;
    }

    private sealed record Bound(int Attempt, Guid TenantId, string Reason, DateTime At);

    /// <summary>Binds one decision or nothing. Returns the new attempt number, or null when the job or a
    /// slot was taken by someone else since the snapshot.</summary>
    private async Task<Bound?> TryBindAsync(Binding b, CancellationToken ct)
    {
        var now = DateTime.UtcNow;
        var slots = b.SlotIndexes.ToArray();
        try
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            int jobs = await db.Jobs.Where(j => j.Id == b.JobId && j.State == JobStates.Queued)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Scheduled).SetProperty(j => j.HostId, b.HostId)
                    .SetProperty(j => j.Attempt, j => j.Attempt + 1).SetProperty(j => j.UpdatedAt, now), ct);
            if (jobs != 1) return null;
            int taken = await db.HostSlots
                .Where(s => s.HostId == b.HostId && slots.Contains(s.Index) && s.JobId == null
                            && db.Hosts.Any(h => h.Id == s.HostId && h.State == HostStates.Online))
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, b.JobId), ct);
            if (taken != slots.Length) return null;
            var reason = $"placed on host {b.HostId}, slots {string.Join(",", slots)}";
            db.JobEvents.Add(new JobEvent { JobId = b.JobId, At = now, FromState = JobStates.Queued, ToState = JobStates.Scheduled, Reason = reason });
            await db.SaveChangesAsync(ct);
            var job = await db.Jobs.AsNoTracking().Where(j => j.Id == b.JobId).Select(j => new { j.Attempt, j.TenantId }).FirstAsync(ct);
            await tx.CommitAsync(ct);
            return new Bound(job.Attempt, job.TenantId, reason, now);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
        {
            log.LogInformation("binding job {Job} lost a race ({State}); it stays queued", b.JobId, e.SqlState);
            return null;
        }
        finally
        {
            db.ChangeTracker.Clear();
        }
    }
}
