using LongSeqService.Shared.Jobs;

namespace LongSeqService.Scheduler.Data;

/// <summary>One state transition of a job, written in the same transaction as the transition.</summary>
public sealed class JobEvent
{
    public long Id { get; set; }
    public Guid JobId { get; set; }
    public DateTime At { get; set; }
    public string? FromState { get; set; }
    public required string ToState { get; set; }
    public required string Reason { get; set; }

    public JobEventDto ToDto() => new(Id, At, FromState, ToState, Reason);
}
