using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Progress;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using System.Security.Claims;

namespace LongSeqService.Api.Keys;

/// <summary>/v1/keys: admins create tenant, admin and host keys; /v1/me tells a caller who it is.</summary>
public static class KeyEndpoints
{
    /// <summary>Who the caller is.</summary>
    /// <param name="Tenant">The caller's tenant.</param>
    /// <param name="Role">What its key may do.</param>
    /// <param name="KeyId">The key's id.</param>
    public sealed record WhoAmI(string Tenant, [property: ClosedSet(typeof(KeyRoles))] string Role, Guid KeyId);

    public static void MapKeyApi(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/v1/keys").WithTags("Keys").RequireAuthorization(Policies.Admin).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        keys.MapPost("", Create).WithName("createKey").ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("Create an API key for a tenant (the key is shown once)");
        keys.MapGet("", List).WithName("listKeys").WithSummary("List keys, oldest first (no secrets; paged)");
        keys.MapDelete("/{id:guid}", Revoke).WithName("revokeKey").WithSummary("Revoke a key: its requests and open hub connections stop at once (on this API process)");

        app.MapGet("/v1/me", (ClaimsPrincipal user) => TypedResults.Ok(new WhoAmI(user.Identity!.Name!,
                user.FindFirstValue(ClaimTypes.Role)!, Guid.Parse(user.FindFirstValue(ApiKeys.KeyIdClaim)!))))
            .WithName("getMe").WithTags("Keys").WithSummary("The caller's tenant and role").RequireAuthorization().ProducesProblem(StatusCodes.Status401Unauthorized);
    }

    /// <param name="after">The next_after of the previous page; omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<KeyDto>>, ProblemHttpResult>> List(string? after, int? limit, ServiceDb db, CancellationToken ct)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        var q = db.ApiKeys.AsNoTracking();
        if (after != null)
        {
            if (!Guid.TryParse(after, out var cursorId) || await db.ApiKeys.AsNoTracking().Where(k => k.Id == cursorId).Select(k => (DateTime?)k.CreatedAt).FirstOrDefaultAsync(ct) is not { } at)
                return Paging.BadCursor(after, "a key id");
            q = q.Where(k => k.CreatedAt > at || (k.CreatedAt == at && k.Id.CompareTo(cursorId) > 0));
        }
        var page = await Paging.ReadAsync(q.OrderBy(k => k.CreatedAt).ThenBy(k => k.Id).Select(k => new { k.Id, Dto = k.ToDto(k.Tenant!.Name) }), take, k => k.Dto, k => k.Id.ToString(), ct);
        return TypedResults.Ok(page);
    }

    private static async Task<Results<Created<CreatedKeyDto>, ProblemHttpResult>> Create(CreateKeyRequest request, ServiceDb db)
    {
        var role = request.Role ?? KeyRoles.Tenant;
        if (!KeyRoles.All.Contains(role)) return Problems.Invalid("role", $"'{role}' is not one of {string.Join(", ", KeyRoles.All)}");
        if (string.IsNullOrWhiteSpace(request.Tenant) || request.Tenant.Length > 100)
            return Problems.Invalid("tenant", "required: a tenant name of 1 to 100 characters");
        var tenant = await GetOrCreateTenantAsync(db, request.Tenant.Trim());
        var secret = ApiKeys.Generate();
        var key = new ApiKey { Id = Guid.CreateVersion7(), TenantId = tenant.Id, Hash = ApiKeys.Hash(secret), Prefix = ApiKeys.PrefixOf(secret),
            Role = role, Name = request.Name, CreatedAt = DateTime.UtcNow };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync();
        return TypedResults.Created($"/v1/keys/{key.Id}", new CreatedKeyDto(key.Id, secret, tenant.Name, role, key.Name, key.CreatedAt));
    }

    /// <param name="id">The key's id.</param>
    private static async Task<Results<NoContent, NotFound>> Revoke(Guid id, ServiceDb db, IMemoryCache cache, HubConnectionsByKey hubConnections)
    {
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == id);
        if (key == null) return TypedResults.NotFound();
        key.RevokedAt ??= DateTime.UtcNow;
        await db.SaveChangesAsync();
        ApiKeyHandler.Forget(cache, key.Hash);
        hubConnections.CloseAll(key.Id);
        return TypedResults.NoContent();
    }

    /// <summary>Tenants come into being with their first key. Concurrent creators meet on the unique name.</summary>
    public static async Task<Tenant> GetOrCreateTenantAsync(ServiceDb db, string name)
    {
        var tenant = await db.Tenants.FirstOrDefaultAsync(t => t.Name == name);
        if (tenant != null) return tenant;
        await db.Database.ExecuteSqlInterpolatedAsync(
            $"INSERT INTO tenants (id, name, created_at) VALUES ({Guid.CreateVersion7()}, {name}, {DateTime.UtcNow}) ON CONFLICT (name) DO NOTHING");
        return await db.Tenants.FirstAsync(t => t.Name == name);
    }
}
