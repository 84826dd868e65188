namespace LongSeqService.Shared.Keys;

/// <summary>What a key may do: a tenant's key sees that tenant's datasets and jobs; an admin key can
/// also create keys and open /hangfire; a host key is a trainer host's credential.</summary>
public static class KeyRoles
{
    public const string Tenant = "tenant";
    public const string Admin = "admin";
    public const string Host = "host";
    public static readonly string[] All = [Tenant, Admin, Host];
}

public sealed record CreateKeyRequest(string Tenant, string? Role, string? Name);

/// <summary>The key itself is returned once, at creation; only its hash is stored.</summary>
public sealed record CreatedKeyDto(Guid Id, string Key, string Tenant, string Role, string? Name, DateTimeOffset CreatedAt);

public sealed record KeyDto(Guid Id, string Prefix, string Tenant, string Role, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);
