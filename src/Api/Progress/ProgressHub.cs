using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Scheduler.Data;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Progress;

/// <summary>
/// /hubs/progress: a client subscribes to one job (<c>SubscribeJob(id)</c>) or to all of its tenant's
/// jobs (<c>SubscribeTenant()</c>) and receives <c>progress</c> (a MetricDto per logged step) and
/// <c>state</c> (a JobStateMessage per transition). Authenticated like the REST API (a browser passes
/// the key as ?access_token=). Revoking the key closes its connections (<see cref="HubConnectionsByKey"/>).
/// </summary>
[Authorize(Policy = Policies.Tenant)]
public sealed class ProgressHub(ServiceDb db, HubConnectionsByKey connections) : Hub
{
    public static string JobGroup(Guid jobId) => $"job:{jobId}";
    public static string TenantGroup(Guid tenantId) => $"tenant:{tenantId}";

    /// <summary>Recorded first, then the key checked again: a revocation either finds this connection to close,
    /// or committed before the check and is seen by it (the sign-in may have come from the 30 s key cache).</summary>
    public override async Task OnConnectedAsync()
    {
        var keyId = Guid.Parse(Context.User!.FindFirstValue(ApiKeys.KeyIdClaim)!);
        connections.Opened(keyId, Context);
        if (!await db.ApiKeys.AnyAsync(k => k.Id == keyId && k.RevokedAt == null)) Context.Abort();
        await base.OnConnectedAsync();
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        connections.Closed(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }

    public async Task SubscribeJob(Guid jobId)
    {
        var tenant = Context.User!.TenantId();
        if (!await db.Jobs.AnyAsync(j => j.Id == jobId && j.TenantId == tenant)) throw new HubException($"no job {jobId}");
        await Groups.AddToGroupAsync(Context.ConnectionId, JobGroup(jobId));
    }

    public Task UnsubscribeJob(Guid jobId) => Groups.RemoveFromGroupAsync(Context.ConnectionId, JobGroup(jobId));

    public Task SubscribeTenant() => Groups.AddToGroupAsync(Context.ConnectionId, TenantGroup(Context.User!.TenantId()));
}
