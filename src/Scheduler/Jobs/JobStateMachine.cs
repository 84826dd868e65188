using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;
using Microsoft.Extensions.Options;

namespace LongSeqService.Scheduler.Jobs;

/// <summary>
/// Every job state change goes through here: one guarded UPDATE (<c>WHERE id = … AND state = from</c>)
/// and its event, in one transaction. Of two writers racing for the same transition, exactly one
/// changes a row; the other sees 0 rows and gets false. Moving to queued or a final state releases
/// the job's slots in the same transaction (release is idempotent); so does moving to paused. A running attempt
/// requeued without training past the step it started from counts as stalled; after
/// <see cref="SchedulerOptions.MaxStalledAttempts"/> of those in a row the job fails instead of being placed again.
/// </summary>
public sealed class JobStateMachine(ServiceDb db, IJobNotifier notifier, IOptions<SchedulerOptions> options)
{
    public async Task<bool> TryMoveAsync(Guid jobId, string from, string to, string reason,
        Action<UpdateSettersBuilder<Job>>? also = null, Func<IQueryable<Job>, IQueryable<Job>>? guard = null, CancellationToken ct = default)
    {
        var now = DateTime.UtcNow;
        Guid tenant;
        bool requeued = from == JobStates.Running && to == JobStates.Queued;
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            var rows = db.Jobs.Where(j => j.Id == jobId && j.State == from);
            if (guard != null) rows = guard(rows);
            int n = await rows.ExecuteUpdateAsync(s =>
            {
                s.SetProperty(j => j.State, to).SetProperty(j => j.UpdatedAt, now);
                if (JobStates.IsTerminal(to)) s.SetProperty(j => j.FinishedAt, now);
                if (requeued) s.SetProperty(j => j.StalledAttempts, j => (j.CurrentStep ?? 0) > (j.StepAtStart ?? 0) ? 0 : j.StalledAttempts + 1);
                also?.Invoke(s);
            }, ct);
            if (n == 0) return false; // disposing the transaction rolls it back
            db.JobEvents.Add(new JobEvent { JobId = jobId, At = now, FromState = from, ToState = to, Reason = reason });
            await db.SaveChangesAsync(ct);
            if (to is JobStates.Queued or JobStates.Paused || JobStates.IsTerminal(to)) await ReleaseSlotsAsync(db, jobId, ct);
            tenant = await db.Jobs.Where(j => j.Id == jobId).Select(j => j.TenantId).FirstAsync(ct);
            await tx.CommitAsync(ct);
        }
        await notifier.StateChangedAsync(tenant, new JobStateMessage(jobId, to, from, reason, now));
        if (requeued && options.Value.MaxStalledAttempts > 0
            && await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.StalledAttempts, j.StepAtStart }).FirstAsync(ct) is { } stall
            && stall.StalledAttempts >= options.Value.MaxStalledAttempts)
        {
            var why = $"requeued {stall.StalledAttempts} times in a row without training past step {stall.StepAtStart ?? 0}; the last: {reason}";
            await TryMoveAsync(jobId, JobStates.Queued, JobStates.Failed, why, s => s.SetProperty(j => j.Error, why), ct: ct);
        }
        return true;
    }

    /// <summary>Tries each (from → to) in order; returns the from-state of the one that won, or null.</summary>
    public async Task<string?> TryMoveFirstAsync(Guid jobId, IEnumerable<(string From, string To)> moves, string reason, CancellationToken ct = default)
    {
        foreach (var (from, to) in moves)
            if (await TryMoveAsync(jobId, from, to, reason, ct: ct)) return from;
        return null;
    }

    /// <summary>Frees every slot the job holds. Safe to call any number of times.</summary>
    public static Task<int> ReleaseSlotsAsync(ServiceDb db, Guid jobId, CancellationToken ct = default) =>
        db.HostSlots.Where(s => s.JobId == jobId).ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null), ct);
}
