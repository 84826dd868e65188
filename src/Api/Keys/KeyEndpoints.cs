using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Progress;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using System.Security.Claims;

namespace LongSeqService.Api.Keys;

/// <summary>/v1/keys: admins create tenant, admin and host keys; /v1/me tells a caller who it is.</summary>
public static class KeyEndpoints
{
    public sealed record WhoAmI(string Tenant, string Role, Guid KeyId);

    public static void MapKeyApi(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/v1/keys").WithTags("Keys").RequireAuthorization(Policies.Admin).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        keys.MapPost("/", Create).ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("Create an API key for a tenant (the key is shown once)");
        keys.MapGet("/", async (ServiceDb db) => TypedResults.Ok(await db.ApiKeys.AsNoTracking().OrderBy(k => k.CreatedAt)
            .Select(k => k.ToDto(k.Tenant!.Name)).ToListAsync())).WithSummary("List keys (no secrets)");
        keys.MapDelete("/{id:guid}", Revoke).WithSummary("Revoke a key: its requests and open hub connections stop at once (on this API process)");

        app.MapGet("/v1/me", (ClaimsPrincipal user) => TypedResults.Ok(new WhoAmI(user.Identity!.Name!,
                user.FindFirstValue(ClaimTypes.Role)!, Guid.Parse(user.FindFirstValue(ApiKeys.KeyIdClaim)!))))
            .WithTags("Keys").WithSummary("The caller's tenant and role").RequireAuthorization().ProducesProblem(StatusCodes.Status401Unauthorized);
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
