using LongSeqService.Shared.Hosts;
using Hangfire;
using LongSeqService.Scheduler;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Health;

/// <summary>/health: the database answers, and a Hangfire server serving the scheduler queue has
/// heartbeated within a minute (in this process or another). 503 when either is missing.</summary>
public static class HealthEndpoints
{
    /// <summary>The closed sets of a health report.</summary>
    public static class ComponentStatus { public const string Ok = "ok", Down = "down"; public static readonly string[] All = [Ok, Down]; }
    public static class OverallStatus { public const string Healthy = "healthy", Unhealthy = "unhealthy"; public static readonly string[] All = [Healthy, Unhealthy]; }

    /// <summary>One part the service needs.</summary>
    /// <param name="Status">Whether it works.</param>
    /// <param name="Detail">What was seen (the error, the servers found).</param>
    public sealed record Component([property: ClosedSet(typeof(ComponentStatus))] string Status, string? Detail);

    /// <summary>The service's health.</summary>
    /// <param name="Status">healthy when the database and the scheduler both work.</param>
    /// <param name="Database">PostgreSQL answers.</param>
    /// <param name="Scheduler">A Hangfire server serves the scheduler queue (heartbeat within a minute).</param>
    /// <param name="HostsOnline">Trainer hosts that heartbeat.</param>
    /// <param name="HostsLost">Trainer hosts that stopped heartbeating.</param>
    public sealed record HealthReport([property: ClosedSet(typeof(OverallStatus))] string Status, Component Database, Component Scheduler, int HostsOnline, int HostsLost);

    public static void MapHealth(this IEndpointRouteBuilder app) =>
        app.MapGet("/health", Check).WithName("getHealth").WithTags("Health").WithSummary("Database and scheduler status").AllowAnonymous()
            .Produces<HealthReport>(StatusCodes.Status503ServiceUnavailable);

    private static async Task<Results<Ok<HealthReport>, JsonHttpResult<HealthReport>>> Check(ServiceDb db, JobStorage storage)
    {
        Component database, scheduler;
        int online = 0, lost = 0;
        try
        {
            await db.Database.ExecuteSqlRawAsync("SELECT 1");
            database = new(ComponentStatus.Ok, null);
            online = await db.Hosts.CountAsync(h => h.State == HostStates.Online);
            lost = await db.Hosts.CountAsync(h => h.State == HostStates.Lost);
        }
        catch (Exception e) { database = new(ComponentStatus.Down, e.GetType().Name + ": " + e.Message); }
        try
        {
            var servers = storage.GetMonitoringApi().Servers()
                .Where(s => s.Queues.Contains(SchedulerOptions.Queue) && s.Heartbeat > DateTime.UtcNow.AddMinutes(-1)).ToList();
            scheduler = servers.Count > 0 ? new(ComponentStatus.Ok, $"{servers.Count} server(s) on queue '{SchedulerOptions.Queue}'")
                                          : new(ComponentStatus.Down, $"no Hangfire server serves the '{SchedulerOptions.Queue}' queue");
        }
        catch (Exception e) { scheduler = new(ComponentStatus.Down, e.GetType().Name + ": " + e.Message); }
        var healthy = database.Status == ComponentStatus.Ok && scheduler.Status == ComponentStatus.Ok;
        var report = new HealthReport(healthy ? OverallStatus.Healthy : OverallStatus.Unhealthy, database, scheduler, online, lost);
        return healthy ? TypedResults.Ok(report) : TypedResults.Json(report, statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}
