using LongSeqService.Api.Auth;
using LongSeqService.Api.Keys;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Keys;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Infrastructure;

public static class DatabaseStartup
{
    /// <summary>Applies migrations (creating the database if needed) and seeds the bootstrap keys.
    /// Runs before the app starts, so Hangfire's server never sees a missing database.</summary>
    public static async Task PrepareDatabaseAsync(this WebApplication app)
    {
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ServiceDb>();
        await db.Database.MigrateAsync();
        var o = scope.ServiceProvider.GetRequiredService<IOptions<LongSeqOptions>>().Value;
        Directory.CreateDirectory(o.DataDir);
        if (o.BootstrapApiKey is { } admin) await EnsureKeyAsync(db, admin, "admin", KeyRoles.Admin, "bootstrap admin key");
        if (o.BootstrapHostKey is { } host) await EnsureKeyAsync(db, host, "hosts", KeyRoles.Host, "bootstrap host key");
    }

    private static async Task EnsureKeyAsync(ServiceDb db, string key, string tenantName, string role, string name)
    {
        var hash = ApiKeys.Hash(key);
        if (await db.ApiKeys.AnyAsync(k => k.Hash == hash)) return;
        var tenant = await KeyEndpoints.GetOrCreateTenantAsync(db, tenantName);
        db.ApiKeys.Add(new ApiKey { Id = Guid.CreateVersion7(), TenantId = tenant.Id, Hash = hash, Prefix = ApiKeys.PrefixOf(key), Role = role, Name = name, CreatedAt = DateTime.UtcNow });
        await db.SaveChangesAsync();
    }
}
