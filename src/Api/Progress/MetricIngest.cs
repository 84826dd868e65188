using System.Text.Json;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Progress;

/// <summary>
/// Stores trainer_log.jsonl records of the job's current attempt as metrics (one row per step; a step
/// logged again after a resume replaces the old row, so a batch replayed from a host's spool changes
/// nothing: idempotent per (job, attempt, step)); a stale attempt's records are refused. Moves the job's progress figures forward (step, loss, tokens/s, trained
/// tokens, ETA) and pushes each record to the hub.
/// </summary>
public sealed class MetricIngest(ServiceDb db, IJobNotifier notifier)
{
    public async Task<bool> IngestAsync(int hostId, Guid jobId, int attempt, IReadOnlyList<TrainerLogRecord> records)
    {
        // FOR SHARE: a requeue (a new attempt) waits for this batch to commit, so no stale record slips in after it.
        await using var tx = await db.Database.BeginTransactionAsync();
        var tenant = await db.Database.SqlQuery<Guid>($@"
            SELECT tenant_id AS ""Value"" FROM jobs WHERE id = {jobId} AND host_id = {hostId} AND attempt = {attempt}
              AND state IN ({JobStates.Running}, {JobStates.Cancelling}, {JobStates.Pausing}) FOR SHARE").ToListAsync();
        if (tenant.Count == 0) return false;
        var job = new { TenantId = tenant[0] };
        if (records.Count == 0) return true;
        var now = DateTime.UtcNow;
        foreach (var r in records)
        {
            var json = JsonSerializer.Serialize(r, WireJson.Options);
            await db.Database.ExecuteSqlInterpolatedAsync($@"
                INSERT INTO metrics (job_id, step, at, loss, record) VALUES ({jobId}, {r.CurrentSteps}, {StepTime(r, now)}, {r.Loss}, {json}::jsonb)
                ON CONFLICT (job_id, step) DO UPDATE SET at = excluded.at, loss = excluded.loss, record = excluded.record");
        }
        var last = records.MaxBy(r => r.CurrentSteps)!;
        DateTime? eta = TrainerLogRecord.Seconds(last.RemainingTime) is { } left ? now.AddSeconds(left) : null;
        long? tokens = records.Where(r => r.TrainedTokens != null).Select(r => r.TrainedTokens).LastOrDefault();
        await db.Jobs.Where(j => j.Id == jobId && (j.CurrentStep == null || j.CurrentStep <= last.CurrentSteps)).ExecuteUpdateAsync(s => s
            .SetProperty(j => j.CurrentStep, last.CurrentSteps)
            .SetProperty(j => j.TotalSteps, last.TotalSteps)
            .SetProperty(j => j.Loss, j => last.Loss ?? j.Loss)
            .SetProperty(j => j.TokensPerSec, j => last.TokensPerSec ?? j.TokensPerSec)
            .SetProperty(j => j.TrainedTokens, j => tokens ?? j.TrainedTokens)
            .SetProperty(j => j.EstimatedFinish, j => eta ?? j.EstimatedFinish)
            .SetProperty(j => j.UpdatedAt, now));
        await tx.CommitAsync();
        foreach (var r in records) await notifier.ProgressAsync(job.TenantId, new MetricDto(jobId, r.CurrentSteps, StepTime(r, now), r));
        return true;
    }

    /// <summary>The step's own time (the trainer's logged_at), or the time it arrived for a trainer that gives none.</summary>
    private static DateTime StepTime(TrainerLogRecord r, DateTime received) => r.LoggedAt?.UtcDateTime ?? received;
}
