using LongSeqService.Shared.Hosts;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Scheduler.Jobs;
using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace LongSeqService.Scheduler.Placement;

/// <summary>
/// One placement pass: snapshot the online hosts' free slots and the queued jobs (two queries), plan in
/// memory with the pure <see cref="PlacementSteps"/>, then bind the whole plan in one transaction with
/// set-based statements. Binding is guarded so a concurrent pass cannot double-book: a job moves
/// queued → scheduled only if it is still queued, and a slot is taken only where <c>job_id IS NULL</c>
/// on a host still online (PostgreSQL's row locks make the loser wait, then re-check). If any of that
/// takes fewer rows than planned — another pass or a cancel got there first — the bulk transaction rolls
/// back and the plan is bound one decision per transaction instead, each all-or-nothing, so the rest
/// still goes through. A world that spans hosts (<see cref="PlacementSteps.Span"/>: only over hosts that
/// registered an MPI host name) leases its slots on every host of the span in the same statements, so it
/// is bound on all of them or on none. A bound run reaches its (first) host as a lease in the host's next
/// heartbeat answer (no queue the host reads: hosts hold no database credential).
/// </summary>
public sealed class PlacementPass(ServiceDb db, IJobNotifier notifier, ILogger<PlacementPass> log)
{
    public async Task<IReadOnlyList<Binding>> RunAsync(CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        var now = DateTime.UtcNow;
        var hosts = await db.Hosts.AsNoTracking().Where(h => h.State == HostStates.Online)
            .Select(h => new HostSnapshot(h.Id, h.Slots.Where(s => s.JobId == null).Select(s => s.Index).ToList(), h.Slots.Count, h.Slots.Min(s => s.MemoryBytes))
                { JoinsSpans = h.MpiHost != null && (h.HeldUntil == null || h.HeldUntil <= now) })
            .ToListAsync(ct);
        if (hosts.All(h => h.FreeSlots.Count == 0)) return [];
        var queue = await db.Jobs.AsNoTracking().Where(j => j.State == JobStates.Queued)
            .OrderByDescending(j => j.Priority).ThenBy(j => j.CreatedAt).Take(10_000)
            .Select(j => new PendingJob(j.Id, j.SequenceParallelSize, j.DataParallelSize, j.Priority, j.CreatedAt, j.RankMemoryBytes))
            .ToListAsync(ct);
        // A job no host can hold alone may span the hosts that join spans (they registered an MPI host name).
        var plan = PlacementSteps.Plan(queue, hosts, spanHosts: true);
        if (plan.Count == 0) return [];
        var read = clock.Elapsed;

        var bound = await TryBindAllAsync(plan, ct);
        if (bound == null)
        {
            log.LogInformation("placement: binding {Count} jobs at once lost a race; binding them one by one", plan.Count);
            bound = [];
            foreach (var binding in plan)
                if (await TryBindAllAsync([binding], ct) is [var one]) bound.Add(one);
        }
        var bind = clock.Elapsed;

        foreach (var b in bound)
            await notifier.StateChangedAsync(b.TenantId, new JobStateMessage(b.Binding.JobId, JobStates.Scheduled, JobStates.Queued, b.Reason, b.At));
        if (bound.Count > 0)
            log.LogInformation("placement bound {Count} of {Queued} queued jobs in {Total:F0} ms (snapshot and plan {Read:F0} ms, bind {Bind:F0} ms, notify {Notify:F0} ms)",
                bound.Count, queue.Count, clock.Elapsed.TotalMilliseconds, read.TotalMilliseconds, (bind - read).TotalMilliseconds, (clock.Elapsed - bind).TotalMilliseconds);
        return bound.Select(b => b.Binding).ToList();
    }

    private sealed record Bound(Binding Binding, int Attempt, Guid TenantId, string Reason, DateTime At);

    private static string ReasonFor(Binding b) => b.More.Count == 0
        ? $"placed on host {b.HostId}, slots {string.Join(",", b.SlotIndexes)}"
        : $"placed across {b.More.Count + 1} hosts, one MPI world launched from host {b.HostId}: "
          + string.Join("; ", b.Parts.Select(p => $"host {p.HostId} slots {string.Join(",", p.SlotIndexes)}"));

    /// <summary>Binds every decision of the plan in one transaction, or none: returns null when a job or
    /// a slot was taken by someone else since the snapshot (or the transaction lost a deadlock).</summary>
    private async Task<List<Bound>?> TryBindAllAsync(List<Binding> plan, CancellationToken ct)
    {
        var now = DateTime.UtcNow;
        var jobIds = plan.Select(b => b.JobId).ToArray();
        // Every host's part of every binding: a world that spans hosts leases its slots on each, in the same statement.
        var leases = plan.SelectMany(b => b.Parts.SelectMany(p => p.SlotIndexes.Select(i => (p.HostId, Index: i, b.JobId)))).ToArray();
        var slotHosts = leases.Select(s => s.HostId).ToArray();
        var slotIndexes = leases.Select(s => s.Index).ToArray();
        var slotJobs = leases.Select(s => s.JobId).ToArray();
        // The further hosts of a span, in rank order, as text (unnest cannot take an array of arrays).
        var spans = plan.Select(b => string.Join(",", b.More.Select(p => p.HostId))).ToArray();
        try
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var conn = (NpgsqlConnection)db.Database.GetDbConnection();
            var ntx = (NpgsqlTransaction)tx.GetDbTransaction();

            var won = new Dictionary<Guid, (int Attempt, Guid TenantId)>(plan.Count);
            await using (var jobs = new NpgsqlCommand("""
                UPDATE jobs j SET state = @scheduled, host_id = p.host_id, attempt = j.attempt + 1, updated_at = @now,
                    span_host_ids = COALESCE(string_to_array(NULLIF(p.span, ''), ',')::integer[], '{}')
                FROM unnest(@job_ids, @host_ids, @spans) AS p(job_id, host_id, span)
                WHERE j.id = p.job_id AND j.state = @queued
                RETURNING j.id, j.attempt, j.tenant_id
                """, conn, ntx))
            {
                jobs.Parameters.AddWithValue("scheduled", JobStates.Scheduled);
                jobs.Parameters.AddWithValue("queued", JobStates.Queued);
                jobs.Parameters.AddWithValue("now", now);
                jobs.Parameters.AddWithValue("job_ids", jobIds);
                jobs.Parameters.AddWithValue("host_ids", plan.Select(b => b.HostId).ToArray());
                jobs.Parameters.AddWithValue("spans", spans);
                await using var reader = await jobs.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct)) won[reader.GetGuid(0)] = (reader.GetInt32(1), reader.GetGuid(2));
            }
            if (won.Count != plan.Count) return null; // disposing the transaction rolls it back

            await using (var slots = new NpgsqlCommand("""
                UPDATE host_slots s SET job_id = p.job_id
                FROM unnest(@slot_hosts, @slot_indexes, @slot_jobs) AS p(host_id, idx, job_id)
                WHERE s.host_id = p.host_id AND s.index = p.idx AND s.job_id IS NULL
                  AND EXISTS (SELECT 1 FROM hosts h WHERE h.id = s.host_id AND h.state = @online)
                """, conn, ntx))
            {
                slots.Parameters.AddWithValue("online", HostStates.Online);
                slots.Parameters.AddWithValue("slot_hosts", slotHosts);
                slots.Parameters.AddWithValue("slot_indexes", slotIndexes);
                slots.Parameters.AddWithValue("slot_jobs", slotJobs);
                if (await slots.ExecuteNonQueryAsync(ct) != slotIndexes.Length) return null;
            }

            var reasons = plan.Select(ReasonFor).ToArray();
            await using (var events = new NpgsqlCommand("""
                INSERT INTO job_events (job_id, at, from_state, to_state, reason)
                SELECT p.job_id, @now, @queued, @scheduled, p.reason FROM unnest(@job_ids, @reasons) AS p(job_id, reason)
                """, conn, ntx))
            {
                events.Parameters.AddWithValue("scheduled", JobStates.Scheduled);
                events.Parameters.AddWithValue("queued", JobStates.Queued);
                events.Parameters.AddWithValue("now", now);
                events.Parameters.AddWithValue("job_ids", jobIds);
                events.Parameters.AddWithValue("reasons", reasons);
                await events.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
            return plan.Select((b, i) => new Bound(b, won[b.JobId].Attempt, won[b.JobId].TenantId, reasons[i], now)).ToList();
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
        {
            log.LogInformation("placement: binding the plan at once lost a race ({State})", e.SqlState);
            return null;
        }
    }
}
