using System.Collections.Concurrent;
using System.Net.Http.Json;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace LongSeqService.Service.Tests;

/// <summary>Real SignalR clients connected through the test server.</summary>
public sealed class ProgressHubTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    private async Task<CreatedKeyDto> KeyAsync(string tenant) =>
        (await (await factory.Admin().PostAsJsonAsync("/v1/keys", new CreateKeyRequest(tenant, null, null), WireJson.Options))
            .Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!;

    private async Task<(HubConnection Hub, ConcurrentQueue<JobStateMessage> Received, Task Closed)> SubscribedAsync(string key)
    {
        var hub = factory.Hub(key);
        var received = new ConcurrentQueue<JobStateMessage>();
        var closed = new TaskCompletionSource();
        hub.On<JobStateMessage>(ProgressHubNames.State, received.Enqueue);
        hub.Closed += _ => { closed.TrySetResult(); return Task.CompletedTask; };
        await hub.StartAsync();
        await hub.InvokeAsync(ProgressHubNames.SubscribeTenant);
        return (hub, received, closed.Task);
    }

    private static async Task Eventually(Func<bool> condition, int seconds = 10)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); !condition(); await Task.Delay(50))
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met in time");
    }

    [Fact]
    public async Task RevokeKey_WithOpenHubConnection_ClosesItAndDeliversNothingMore()
    {
        var tenant = $"hub-{Guid.NewGuid():N}";
        var (revoked, kept) = (await KeyAsync(tenant), await KeyAsync(tenant));
        var (hub, received, closed) = await SubscribedAsync(revoked.Key);
        var (other, otherReceived, _) = await SubscribedAsync(kept.Key);
        Guid tenantId;
        await using (var scope = factory.Scope()) tenantId = (await factory.Db(scope).ApiKeys.FirstAsync(k => k.Id == revoked.Id)).TenantId;
        var notifier = factory.Services.GetRequiredService<IJobNotifier>();
        JobStateMessage Message(string reason) => new(Guid.NewGuid(), "running", "scheduled", reason, DateTimeOffset.UtcNow);

        await notifier.StateChangedAsync(tenantId, Message("before"));
        await Eventually(() => received.Count == 1 && otherReceived.Count == 1);

        Assert.Equal(System.Net.HttpStatusCode.NoContent, (await factory.Admin().DeleteAsync($"/v1/keys/{revoked.Id}")).StatusCode);
        await closed.WaitAsync(TimeSpan.FromSeconds(10));
        await notifier.StateChangedAsync(tenantId, Message("after"));
        await Eventually(() => otherReceived.Count == 2);
        await Task.Delay(500);
        Assert.Equal(["before"], received.Select(m => m.Reason));
        Assert.Equal(HubConnectionState.Disconnected, hub.State);
        Assert.Equal(HubConnectionState.Connected, other.State);

        // Reconnecting with the revoked key is refused.
        await Assert.ThrowsAnyAsync<Exception>(() => SubscribedAsync(revoked.Key));
        await hub.DisposeAsync();
        await other.DisposeAsync();
    }
}
