using Hangfire;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Liveness;
using LongSeqService.Scheduler.Placement;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LongSeqService.Scheduler;

public static class SchedulerSetup
{
    /// <summary>Placement, liveness and the job state machine. Needs ServiceDb and Hangfire registered.</summary>
    public static IServiceCollection AddLongSeqScheduler(this IServiceCollection services, IConfiguration config)
    {
        services.Configure<SchedulerOptions>(config.GetSection("Scheduler"));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IJobNotifier, NoJobNotifier>();
        services.AddScoped<JobStateMachine>();
        services.AddSingleton<LivenessClock>();
        services.AddScoped<PlacementPass>();
        services.AddScoped<PlacementJob>();
        services.AddSingleton<PlacementTrigger>();
        services.AddScoped<LivenessCheck>();
        services.AddScoped<LivenessJob>();
        services.AddHostedService<RecurringJobsRegistration>();
        return services;
    }

    /// <summary>The recurring sweeps: liveness, and a placement pass as a safety net.</summary>
    public static void AddRecurringSchedulerJobs(IRecurringJobManager recurring, SchedulerOptions o)
    {
        var opts = new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc };
        recurring.AddOrUpdate<LivenessJob>("liveness", SchedulerOptions.Queue, j => j.RunAsync(CancellationToken.None), o.LivenessCron, opts);
        recurring.AddOrUpdate<PlacementJob>("placement", SchedulerOptions.Queue, j => j.RunAsync(CancellationToken.None), o.PlacementCron, opts);
    }
}
