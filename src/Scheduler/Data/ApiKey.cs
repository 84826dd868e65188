using LongSeqService.Shared.Keys;

namespace LongSeqService.Scheduler.Data;

/// <summary>An API key, stored as its SHA-256 (keys are 32 random bytes, so a fast hash is enough);
/// the prefix lets people tell their keys apart without the secret.</summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public Tenant? Tenant { get; set; }
    public required string Hash { get; set; }
    public required string Prefix { get; set; }
    public required string Role { get; set; }
    public string? Name { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? RevokedAt { get; set; }

    public KeyDto ToDto(string tenant) => new(Id, Prefix, tenant, Role, Name, CreatedAt, RevokedAt);
}
