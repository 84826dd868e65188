using Hangfire;
using LongSeqService.Scheduler;
using LongSeqService.Scheduler.Data;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Health;

/// <summary>/health: the database answers, and a Hangfire server serving the scheduler queue has
/// heartbeated within a minute (in this process or another). 503 when either is missing.</summary>
public static class HealthEndpoints
{
    public sealed record Component(string Status, string? Detail);
    public sealed record HealthReport(string Status, Component Database, Component Scheduler, int HostsOnline, int HostsLost);

    public static void MapHealth(this IEndpointRouteBuilder app) =>
        app.MapGet("/health", Check).WithTags("Health").WithSummary("Database and scheduler status").AllowAnonymous()
            .Produces<HealthReport>(StatusCodes.Status503ServiceUnavailable);

    private static async Task<Results<Ok<HealthReport>, JsonHttpResult<HealthReport>>> Check(ServiceDb db, JobStorage storage)
    {
        Component database, scheduler;
        int online = 0, lost = 0;
        try
        {
            await db.Database.ExecuteSqlRawAsync("SELECT 1");
            database = new("ok", null);
            online = await db.Hosts.CountAsync(h => h.State == HostStates.Online);
            lost = await db.Hosts.CountAsync(h => h.State == HostStates.Lost);
        }
        catch (Exception e) { database = new("down", e.GetType().Name + ": " + e.Message); }
        try
        {
            var servers = storage.GetMonitoringApi().Servers()
                .Where(s => s.Queues.Contains(SchedulerOptions.Queue) && s.Heartbeat > DateTime.UtcNow.AddMinutes(-1)).ToList();
            scheduler = servers.Count > 0 ? new("ok", $"{servers.Count} server(s) on queue '{SchedulerOptions.Queue}'")
                                          : new("down", $"no Hangfire server serves the '{SchedulerOptions.Queue}' queue");
        }
        catch (Exception e) { scheduler = new("down", e.GetType().Name + ": " + e.Message); }
        var healthy = database.Status == "ok" && scheduler.Status == "ok";
        var report = new HealthReport(healthy ? "healthy" : "unhealthy", database, scheduler, online, lost);
        return healthy ? TypedResults.Ok(report) : TypedResults.Json(report, statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}
