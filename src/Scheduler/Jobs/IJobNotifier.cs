using LongSeqService.Shared.Progress;

namespace LongSeqService.Scheduler.Jobs;

/// <summary>Tells live clients about state changes and progress. The Api implements it with the
/// SignalR hub; a scheduler running in its own process has no clients and uses <see cref="NoJobNotifier"/>.</summary>
public interface IJobNotifier
{
    Task StateChangedAsync(Guid tenantId, JobStateMessage message);
    Task ProgressAsync(Guid tenantId, MetricDto metric);
}

public sealed class NoJobNotifier : IJobNotifier
{
    public Task StateChangedAsync(Guid tenantId, JobStateMessage message) => Task.CompletedTask;
    public Task ProgressAsync(Guid tenantId, MetricDto metric) => Task.CompletedTask;
}
