using System.Security.Claims;
using System.Text.Encodings.Web;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Keys;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Auth;

public static class Policies
{
    /// <summary>Tenant data: a tenant's key or an admin key.</summary>
    public const string Tenant = "tenant";
    public const string Admin = "admin";
    public const string Host = "host";
}

public static class ApiKeyAuthSetup
{
    public static void AddApiKeyAuth(this IServiceCollection services)
    {
        services.AddMemoryCache();
        services.AddAuthentication(ApiKeys.Scheme).AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>(ApiKeys.Scheme, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(Policies.Tenant, p => p.RequireRole(KeyRoles.Tenant, KeyRoles.Admin))
            .AddPolicy(Policies.Admin, p => p.RequireRole(KeyRoles.Admin))
            .AddPolicy(Policies.Host, p => p.RequireRole(KeyRoles.Host, KeyRoles.Admin));
    }
}

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;key&gt;</c> against the hashed keys. Browsers cannot set
/// headers on a WebSocket, so the hub also takes <c>?access_token=</c> (SignalR's convention), and
/// /hangfire also takes the key from the <c>longseq_key</c> cookie. Lookups are cached for 30 s; revoking
/// through DELETE /v1/keys drops the cache entry and closes the key's hub connections at once, a key
/// revoked any other way (another API process, SQL) stops within 30 s.
/// </summary>
public sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, IMemoryCache cache)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private sealed record Found(Guid KeyId, Guid TenantId, string Tenant, string Role);

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? key = null;
        var header = Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) key = header[7..].Trim();
        else if (Request.Path.StartsWithSegments("/hubs") && Request.Query.TryGetValue("access_token", out var token)) key = token;
        else if (Request.Path.StartsWithSegments("/hangfire") && Request.Cookies.TryGetValue("longseq_key", out var cookie)) key = cookie;
        if (string.IsNullOrEmpty(key)) return AuthenticateResult.NoResult();

        var hash = ApiKeys.Hash(key);
        var found = await cache.GetOrCreateAsync("key:" + hash, async entry =>
        {
            entry.AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(30);
            var db = Context.RequestServices.GetRequiredService<ServiceDb>();
            return await db.ApiKeys.AsNoTracking().Where(k => k.Hash == hash && k.RevokedAt == null)
                .Select(k => new Found(k.Id, k.TenantId, k.Tenant!.Name, k.Role)).FirstOrDefaultAsync();
        });
        if (found == null) return AuthenticateResult.Fail("invalid or revoked API key");
        var identity = new ClaimsIdentity([
            new Claim(ApiKeys.KeyIdClaim, found.KeyId.ToString()),
            new Claim(ApiKeys.TenantIdClaim, found.TenantId.ToString()),
            new Claim(ApiKeys.TenantClaim, found.Tenant),
            new Claim(ClaimTypes.Role, found.Role),
        ], ApiKeys.Scheme, ApiKeys.TenantClaim, ClaimTypes.Role);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), ApiKeys.Scheme));
    }

    public static void Forget(IMemoryCache cache, string hash) => cache.Remove("key:" + hash);
}
