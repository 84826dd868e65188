using LongSeqService.Scheduler.Jobs;
using LongSeqService.Shared.Progress;
using Microsoft.AspNetCore.SignalR;

namespace LongSeqService.Api.Progress;

/// <summary>Pushes state changes and progress to the job's subscribers and the tenant's (a connection
/// in both groups gets each message once).</summary>
public sealed class HubJobNotifier(IHubContext<ProgressHub> hub) : IJobNotifier
{
    public Task StateChangedAsync(Guid tenantId, JobStateMessage message) =>
        hub.Clients.Groups(ProgressHub.JobGroup(message.JobId), ProgressHub.TenantGroup(tenantId)).SendAsync(ProgressHubNames.State, message);

    public Task ProgressAsync(Guid tenantId, MetricDto metric) =>
        hub.Clients.Groups(ProgressHub.JobGroup(metric.JobId), ProgressHub.TenantGroup(tenantId)).SendAsync(ProgressHubNames.Progress, metric);
}
