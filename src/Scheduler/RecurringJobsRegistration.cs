using Hangfire;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LongSeqService.Scheduler;

/// <summary>
/// Registers the recurring sweeps (<see cref="SchedulerSetup.AddRecurringSchedulerJobs"/>) once the app runs,
/// retrying until the storage lets it. Registering takes Hangfire's distributed lock on each recurring job; an
/// API that was killed while its scheduler held one leaves the lock row behind until it expires, and a
/// registration on the startup path then threw and took the restarted API down with it (found by the fault
/// injection: the API could not come back for the lock's whole expiry). The sweeps keep running under their
/// old registration meanwhile — the storage still holds it.
/// </summary>
internal sealed class RecurringJobsRegistration(IRecurringJobManager recurring, IOptions<SchedulerOptions> options, ILogger<RecurringJobsRegistration> log)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.RecurringJobs) return;
        // Off the startup path: a held lock makes each attempt wait for Hangfire's lock timeout, and the host must not wait with it.
        await Task.Yield();
        for (var delay = TimeSpan.FromSeconds(1); !stoppingToken.IsCancellationRequested; delay = TimeSpan.FromSeconds(Math.Min(30, delay.TotalSeconds * 2)))
        {
            try
            {
                SchedulerSetup.AddRecurringSchedulerJobs(recurring, options.Value);
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogWarning("could not register the recurring sweeps yet ({Message}); retrying in {Delay} s", e.Message, delay.TotalSeconds);
            }
            try { await Task.Delay(delay, stoppingToken); } catch (OperationCanceledException) { return; }
        }
    }
}
