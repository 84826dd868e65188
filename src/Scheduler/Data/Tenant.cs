namespace LongSeqService.Scheduler.Data;

/// <summary>Whoever owns datasets and jobs; every API key belongs to one.</summary>
public sealed class Tenant
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; set; }
}
