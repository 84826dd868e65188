using System.Text.Json;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Scheduler.Data;

/// <summary>One logged step of a job (the trainer_log.jsonl record as sent). Keyed by (job, step): a
/// run resumed from a checkpoint logs some steps again, and the newer record replaces the older.</summary>
public sealed class Metric
{
    public Guid JobId { get; set; }
    public int Step { get; set; }
    public DateTime At { get; set; }
    public double? Loss { get; set; }
    public required string Record { get; set; }

    public MetricDto ToDto() => new(JobId, Step, At, JsonSerializer.Deserialize<TrainerLogRecord>(Record, WireJson.Options)!);
}
