using System.Net;
using System.Net.Http.Json;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Liveness;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace LongSeqService.Service.Tests;

/// <summary>The trust boundary around hosts: registration hands out no database credential, a host key
/// is exactly one host (every host call is checked against it), and every run report carries its attempt
/// (a stale one is refused). Each test registers its own two hosts, "mine" and "theirs", with their own keys.</summary>
public sealed class HostTrustTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _tenant = null!;
    private DatasetDto _dataset = null!;
    private string _mine = null!, _theirs = null!;
    private int _myId, _theirId;

    public async Task InitializeAsync()
    {
        (_tenant, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_tenant, Data.File("identity.json"));
        _mine = $"mine-{Guid.NewGuid():N}";
        _theirs = $"theirs-{Guid.NewGuid():N}";
        _myId = (await factory.RegisterHostAsync(_mine, 2)).HostId;
        _theirId = (await factory.RegisterHostAsync(_theirs, 2)).HostId;
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<HttpClient> HostClient(string name) => factory.Client(await factory.HostKeyFor(name));

    /// <summary>A job placed on host <paramref name="hostId"/> (every other host set aside) and started there: running, attempt 1.</summary>
    private async Task<Guid> RunningOnAsync(int hostId, string hostName)
    {
        await using (var scope = factory.Scope())
        {
            var db = factory.Db(scope);
            await db.Jobs.Where(j => !JobStates.Terminal.Contains(j.State)).ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Cancelled));
            await db.HostSlots.ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null));
            await db.Hosts.Where(h => h.Id != hostId).ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost));
        }
        var response = await _tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = 1, max_steps = 10 });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
        await using (var scope = factory.Scope())
        {
            var bound = await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync();
            Assert.Equal(hostId, Assert.Single(bound).HostId);
            await factory.Db(scope).Hosts.ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Online));
        }
        var host = await HostClient(hostName);
        var started = await host.PostAsJsonAsync($"/v1/hosts/{hostId}/runs/{job}/start", new StartRunRequest(1), WireJson.Options);
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        return job;
    }

    private async Task<JobDto> JobAsync(Guid id) => (await _tenant.GetFromJsonAsync<JobDto>($"/v1/jobs/{id}", WireJson.Options))!;

    private static RunMetricsRequest Loss(int attempt, int step, double loss) => new(attempt, [new TrainerLogRecord { CurrentSteps = step, TotalSteps = 10, Loss = loss }]);

    [Fact]
    public async Task Register_Response_HoldsNoDatabaseCredential()
    {
        var response = await (await HostClient(_mine)).PostAsJsonAsync("/v1/hosts/register", new RegisterHostRequest(_mine, [new SlotSpec("cpu", null)]), WireJson.Options);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("connection", body, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("password", body, StringComparison.OrdinalIgnoreCase);
        var password = factory.ConnectionString.Split(';').First(p => p.StartsWith("Password=", StringComparison.OrdinalIgnoreCase))[9..];
        Assert.DoesNotContain(password, body);
    }

    [Fact]
    public async Task Heartbeat_AnotherHostsId_IsForbidden()
    {
        var response = await (await HostClient(_theirs)).PostAsJsonAsync($"/v1/hosts/{_myId}/heartbeat", new HeartbeatRequest([]), WireJson.Options);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task Metrics_AnotherHostsRun_IsForbiddenAndTheTenantNeverSeesTheLoss()
    {
        var job = await RunningOnAsync(_myId, _mine);
        var response = await (await HostClient(_theirs)).PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/metrics", Loss(1, 1, 123.456), WireJson.Options);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Empty((await _tenant.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics"))!);
        Assert.Null((await JobAsync(job)).Loss);
    }

    [Fact]
    public async Task Finish_AnotherHostsRun_IsForbiddenAndTheJobKeepsRunning()
    {
        var job = await RunningOnAsync(_myId, _mine);
        var response = await (await HostClient(_theirs)).PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/finish",
            new FinishRunRequest(1, RunOutcomes.Succeeded, 0, null), WireJson.Options);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal(JobStates.Running, (await JobAsync(job)).State);
    }

    [Fact]
    public async Task Register_AnotherHostsName_IsForbiddenAndItsRunKeepsRunning()
    {
        var job = await RunningOnAsync(_myId, _mine);
        var response = await (await HostClient(_theirs)).PostAsJsonAsync("/v1/hosts/register", new RegisterHostRequest(_mine, [new SlotSpec("cpu", null)]), WireJson.Options);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var row = await JobAsync(job);
        Assert.Equal((JobStates.Running, (int?)_myId, 1), (row.State, row.HostId, row.Attempt));
    }

    [Fact]
    public async Task Register_OneKeyForASecondHost_IsForbidden()
    {
        var response = await (await HostClient(_mine)).PostAsJsonAsync("/v1/hosts/register", new RegisterHostRequest($"second-{Guid.NewGuid():N}", [new SlotSpec("cpu", null)]), WireJson.Options);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains(_mine, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Reports_StaleAttempt_AreRefusedWithAnInstructionToStop()
    {
        var job = await RunningOnAsync(_myId, _mine);
        var host = await HostClient(_mine);
        Assert.Equal(HttpStatusCode.NoContent, (await host.PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/metrics", Loss(1, 1, 2.0), WireJson.Options)).StatusCode);
        // The attempt is requeued and placed again (attempt 2): attempt 1's reports are stale.
        await using (var scope = factory.Scope()) await scope.ServiceProvider.GetRequiredService<LivenessCheck>().RequeueRunsOfLostHostsAsync(host: _myId, why: "test");
        await using (var scope = factory.Scope()) Assert.Single(await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync());

        var metrics = await host.PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/metrics", Loss(1, 2, 1.5), WireJson.Options);
        var finish = await host.PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/finish", new FinishRunRequest(1, RunOutcomes.Succeeded, 0, null), WireJson.Options);

        Assert.Equal((HttpStatusCode.Conflict, HttpStatusCode.Conflict), (metrics.StatusCode, finish.StatusCode));
        Assert.Contains("stop", await metrics.Content.ReadAsStringAsync());
        Assert.Equal(JobStates.Scheduled, (await JobAsync(job)).State);
        Assert.Equal([1], (await _tenant.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics"))!.Select(m => m.Step));
    }

    [Fact]
    public async Task Finish_ReportedTwice_IsAppliedOnce()
    {
        var job = await RunningOnAsync(_myId, _mine);
        var host = await HostClient(_mine);
        var finish = new FinishRunRequest(1, RunOutcomes.Succeeded, 0, null);
        var first = await host.PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/finish", finish, WireJson.Options);
        var again = await host.PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/finish", finish, WireJson.Options);

        Assert.Equal((HttpStatusCode.NoContent, HttpStatusCode.Conflict), (first.StatusCode, again.StatusCode));
        var events = await _tenant.ListAsync<JobEventDto>($"/v1/jobs/{job}/events");
        Assert.Single(events!, e => e.ToState == JobStates.Succeeded);
    }

    [Fact]
    public async Task Heartbeat_LeasesThePlacedRunAndAfterBeingLostSaysStopEverything()
    {
        var job = await RunningOnAsync(_myId, _mine);
        var host = await HostClient(_mine);
        // Another job placed on the same host and not started yet: the heartbeat leases it.
        var response = await _tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = 1 });
        var second = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
        await using (var scope = factory.Scope())
        {
            await factory.Db(scope).Hosts.Where(h => h.Id != _myId).ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost));
            Assert.Single(await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync());
        }
        var beat = await (await host.PostAsJsonAsync($"/v1/hosts/{_myId}/heartbeat", new HeartbeatRequest([new RunningRun(job, 1)]), WireJson.Options))
            .Content.ReadFromJsonAsync<HeartbeatResponse>(WireJson.Options);
        Assert.Equal([new RunningRun(second, 1)], beat!.Start);
        Assert.Empty(beat.Stop);
        Assert.False(beat.Lost);

        // Silent past the timeout: declared lost. Its next heartbeat says so, and leases nothing.
        await using (var scope = factory.Scope())
        {
            await factory.Db(scope).Hosts.Where(h => h.Id == _myId).ExecuteUpdateAsync(s => s.SetProperty(h => h.LastHeartbeatAt, DateTime.UtcNow.AddMinutes(-5)));
            await scope.ServiceProvider.GetRequiredService<LivenessCheck>().RunAsync();
        }
        beat = await (await host.PostAsJsonAsync($"/v1/hosts/{_myId}/heartbeat", new HeartbeatRequest([new RunningRun(job, 1)]), WireJson.Options))
            .Content.ReadFromJsonAsync<HeartbeatResponse>(WireJson.Options);
        Assert.True(beat!.Lost);
        Assert.Equal([job], beat.Stop);
        Assert.Empty(beat.Start);
        Assert.Equal(JobStates.Queued, (await JobAsync(job)).State);
    }

    [Fact]
    public async Task Liveness_RightAfterTheApiWasAway_DeclaresNoSilentHostLost()
    {
        await using (var scope = factory.Scope())
            await factory.Db(scope).Hosts.Where(h => h.Id == _myId).ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Online).SetProperty(h => h.LastHeartbeatAt, DateTime.UtcNow.AddSeconds(-30)));
        await using (var scope = factory.Scope())
        {
            // A scheduler that just started (or whose sweeps failed while the database was away): default grace.
            var check = ActivatorUtilities.CreateInstance<LivenessCheck>(scope.ServiceProvider, new LivenessClock(TimeProvider.System),
                Microsoft.Extensions.Options.Options.Create(new LongSeqService.Scheduler.SchedulerOptions()));
            await check.RunAsync();
        }
        await using (var scope = factory.Scope())
            Assert.Equal(HostStates.Online, await factory.Db(scope).Hosts.Where(h => h.Id == _myId).Select(h => h.State).FirstAsync());
    }

    [Fact]
    public void LivenessClock_AfterAGapInTheSweeps_ListensAfreshFromThen()
    {
        var time = new ManualTime { Now = new DateTimeOffset(2026, 12, 1, 10, 0, 0, TimeSpan.Zero) };
        var clock = new LivenessClock(time);
        var start = time.Now.UtcDateTime;
        Assert.Equal(start, clock.Sweep(TimeSpan.FromSeconds(10))); // the first sweep: listening from now
        clock.Succeeded();
        time.Now += TimeSpan.FromSeconds(5);
        Assert.Equal(start, clock.Sweep(TimeSpan.FromSeconds(10)));
        clock.Succeeded();
        time.Now += TimeSpan.FromSeconds(30); // the API (or its database) was away: no sweep succeeded
        Assert.Equal(time.Now.UtcDateTime, clock.Sweep(TimeSpan.FromSeconds(10)));
    }

    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; }
        public override DateTimeOffset GetUtcNow() => Now;
    }
}
