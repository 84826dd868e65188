using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;

namespace LongSeqService.Api.Auth;

/// <summary>Key generation and hashing, and reading the caller from the claims.</summary>
public static class ApiKeys
{
    public const string Scheme = "ApiKey";
    public const string TenantIdClaim = "tenant_id";
    public const string TenantClaim = "tenant";
    public const string KeyIdClaim = "key_id";

    /// <summary>lsk_ + 32 random bytes, URL-safe.</summary>
    public static string Generate() => "lsk_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    public static string PrefixOf(string key) => key.Length <= 10 ? key[..Math.Min(4, key.Length)] : key[..10];

    public static Guid TenantId(this ClaimsPrincipal user) => Guid.Parse(user.FindFirstValue(TenantIdClaim)!);
    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(Shared.Keys.KeyRoles.Admin);
}
