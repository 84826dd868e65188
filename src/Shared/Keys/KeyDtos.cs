using LongSeqService.Shared.Wire;

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

/// <summary>POST /v1/keys: a key for a tenant (created with its first key).</summary>
/// <param name="Tenant">The tenant's name, 1 to 100 characters.</param>
/// <param name="Role">What the key may do (default tenant).</param>
/// <param name="Name">A label for the key (a host key's host name, a person).</param>
public sealed record CreateKeyRequest(string Tenant, [property: ClosedSet(typeof(KeyRoles))] string? Role, string? Name);

/// <summary>The key itself is returned once, at creation; only its hash is stored.</summary>
/// <param name="Id">The key's id (revoke it with DELETE /v1/keys/{id}).</param>
/// <param name="Key">The secret: send it as Authorization: Bearer &lt;key&gt;. Shown this once.</param>
/// <param name="Tenant">The tenant it belongs to.</param>
/// <param name="Role">What it may do.</param>
/// <param name="Name">Its label.</param>
/// <param name="CreatedAt">When it was created.</param>
public sealed record CreatedKeyDto(Guid Id, string Key, string Tenant, [property: ClosedSet(typeof(KeyRoles))] string Role, string? Name, DateTimeOffset CreatedAt);

/// <summary>A key as listed: never its secret.</summary>
/// <param name="Id">The key's id.</param>
/// <param name="Prefix">The secret's first characters, to tell keys apart.</param>
/// <param name="Tenant">The tenant it belongs to.</param>
/// <param name="Role">What it may do.</param>
/// <param name="Name">Its label.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="RevokedAt">When it was revoked; null while it works.</param>
public sealed record KeyDto(Guid Id, string Prefix, string Tenant, [property: ClosedSet(typeof(KeyRoles))] string Role, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);
