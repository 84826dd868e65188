using System.Net;
using System.Net.Http.Json;
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

/// <summary>
/// A job's world across hosts, against the database: placement leases slots on every host of the span in one
/// binding (only hosts that registered an MPI host name), the first host is leased the run
/// and its start answer carries the <c>mpi_hosts</c> derived from the binding, the other hosts keep their slots
/// busy and start nothing, and losing any host of the span requeues the attempt and frees the slots on all of them.
/// Each test uses hosts of its own and starts from an empty queue (the class shares one database).
/// </summary>
public sealed class SpanningPlacementTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _dataset = null!;

    public async Task InitializeAsync()
    {
        (_client, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
        await factory.EmptyQueueAndHostsAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private sealed record SpanHost(string Name, string MpiName, int Id, HttpClient Client);

    private async Task<SpanHost> HostAsync(int slots, bool joinsSpans = true)
    {
        var name = $"s-{Guid.NewGuid():N}"[..14];
        var mpi = joinsSpans ? $"mpi-{name}" : null;
        var registered = await factory.RegisterHostAsync(name, slots, mpiHost: mpi);
        return new SpanHost(name, mpi ?? "", registered.HostId, factory.Client(await factory.HostKeyFor(name)));
    }

    private async Task<Guid> SubmitAsync(int sp, int zeroStage = 0)
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", new
        {
            model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = sp, zero_stage = zeroStage, launch = "processes",
        });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
    }

    private async Task<IReadOnlyList<Binding>> PassAsync()
    {
        await using var scope = factory.Scope();
        return await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync();
    }

    private async Task LivenessAsync()
    {
        await using var scope = factory.Scope();
        await scope.ServiceProvider.GetRequiredService<LivenessCheck>().RunAsync();
    }

    private async Task<T> WithDb<T>(Func<LongSeqService.Scheduler.Data.ServiceDb, Task<T>> read)
    {
        await using var scope = factory.Scope();
        return await read(factory.Db(scope));
    }

    private Task<List<(int Host, int Index)>> HeldAsync(Guid job) => WithDb(async db =>
        (await db.HostSlots.Where(s => s.JobId == job).OrderBy(s => s.HostId).ThenBy(s => s.Index).Select(s => new { s.HostId, s.Index }).ToListAsync())
        .Select(s => (s.HostId, s.Index)).ToList());

    private static async Task<HeartbeatResponse> BeatAsync(SpanHost host, params RunningRun[] running)
    {
        var response = await host.Client.PostAsJsonAsync($"/v1/hosts/{host.Id}/heartbeat", new HeartbeatRequest(running), WireJson.Options);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<HeartbeatResponse>(WireJson.Options))!;
    }

    /// <summary>Two span hosts of two slots and an SP=4 job placed across them: the launching (first) host and the other.</summary>
    private async Task<(Guid Job, SpanHost First, SpanHost Second, Binding Binding)> PlaceAcrossTwoAsync()
    {
        var a = await HostAsync(2);
        var b = await HostAsync(2);
        var job = await SubmitAsync(sp: 4);
        var binding = Assert.Single(await PassAsync());
        var (first, second) = binding.HostId == a.Id ? (a, b) : (b, a);
        return (job, first, second, binding);
    }

    [Fact]
    public async Task Pass_GangLargerThanAnyHost_LeasesSlotsOnEverySpanHostInOneBinding()
    {
        var a = await HostAsync(2);
        var b = await HostAsync(2);
        var job = await SubmitAsync(sp: 4);

        var binding = Assert.Single(await PassAsync());

        Assert.Equal([(a.Id, 2), (b.Id, 2)], binding.Parts.Select(p => (p.HostId, p.SlotIndexes.Count)).OrderBy(p => p.HostId).ToArray());
        var row = await WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job));
        Assert.Equal((JobStates.Scheduled, binding.HostId, 1), (row.State, row.HostId, row.Attempt));
        Assert.Equal(binding.More.Select(p => p.HostId).ToArray(), row.SpanHostIds);
        Assert.Equal([(a.Id, 0), (a.Id, 1), (b.Id, 0), (b.Id, 1)], await HeldAsync(job));
        var events = await _client.ListAsync<JobEventDto>($"/v1/jobs/{job}/events");
        Assert.Contains("across 2 hosts", events!.Last().Reason);
        Assert.Empty(await PassAsync());
    }

    [Fact]
    public async Task Pass_HostWithoutMpiHost_IsNoPartOfASpan()
    {
        var a = await HostAsync(2);
        await HostAsync(2, joinsSpans: false);
        var c = await HostAsync(2);
        var busy = Guid.NewGuid();                                                          // another world holds c for now
        await WithDb(db => db.HostSlots.Where(s => s.HostId == c.Id).ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, busy)));
        var job = await SubmitAsync(sp: 4);
        // a and the host without an MPI host name have 4 free slots together: not a world.
        Assert.Empty(await PassAsync());
        Assert.Empty(await HeldAsync(job));

        await WithDb(db => db.HostSlots.Where(s => s.HostId == c.Id).ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null)));
        var binding = Assert.Single(await PassAsync());
        Assert.Equal(new[] { a.Id, c.Id }, binding.Parts.Select(p => p.HostId).Order().ToArray());
    }

    [Fact]
    public async Task Submit_ZeroStageWorldLargerThanAnyHost_IsPlacedAcrossHosts()
    {
        var hosts = new List<SpanHost>();
        for (int i = 0; i < 4; i++) hosts.Add(await HostAsync(2));                          // 8 slots across span hosts, none has more than 2
        var job = await SubmitAsync(sp: 8, zeroStage: 3);                                   // ZeRO's partitions reach rank 0 over MPI
        var binding = Assert.Single(await PassAsync());
        Assert.Equal(job, binding.JobId);
        Assert.Equal(hosts.Select(h => h.Id).Order(), binding.Parts.Select(p => p.HostId).Order());
    }

    [Fact]
    public async Task Pass_ConcurrentPassesOverSpans_NeverDoubleBookAndEveryWorldIsWhole()
    {
        var hosts = new List<SpanHost>();
        for (int i = 0; i < 5; i++) hosts.Add(await HostAsync(2));
        var jobs = new List<Guid>();
        for (int i = 0; i < 3; i++) jobs.Add(await SubmitAsync(sp: 4));

        await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(PassAsync)));

        var rows = await WithDb(db => db.Jobs.AsNoTracking().Where(j => jobs.Contains(j.Id)).ToListAsync());
        Assert.Equal(2, rows.Count(r => r.State == JobStates.Scheduled));                   // 10 slots: two worlds of 4
        foreach (var row in rows)
        {
            var held = await HeldAsync(row.Id);
            if (row.State != JobStates.Scheduled) { Assert.Empty(held); continue; }
            Assert.Equal(4, held.Count);
            Assert.Equal(new[] { row.HostId!.Value }.Concat(row.SpanHostIds).Order().ToArray(), held.Select(h => h.Host).Distinct().Order().ToArray());
        }
        var ids = hosts.Select(h => h.Id).ToList();
        Assert.Equal(8, await WithDb(db => db.HostSlots.CountAsync(s => ids.Contains(s.HostId) && s.JobId != null)));
    }

    [Fact]
    public async Task Start_SpanningRun_FirstHostGetsMpiHostsFromTheBindingOthersStartNothing()
    {
        var (job, first, second, _) = await PlaceAcrossTwoAsync();

        var leased = await BeatAsync(first);
        Assert.Equal([new RunningRun(job, 1)], leased.Start);
        var other = await BeatAsync(second);
        Assert.Empty(other.Start);
        Assert.Equal([new RunningRun(job, 1)], other.Joined);

        // The other host may not start it; the first gets the world in rank order, under the names the hosts registered.
        Assert.Equal(HttpStatusCode.Conflict, (await second.Client.PostAsJsonAsync($"/v1/hosts/{second.Id}/runs/{job}/start", new StartRunRequest(1), WireJson.Options)).StatusCode);
        var started = await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/start", new StartRunRequest(1), WireJson.Options);
        Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
        var run = (await started.Content.ReadFromJsonAsync<StartRunResponse>(WireJson.Options))!;
        Assert.Equal($"{first.MpiName}:2,{second.MpiName}:2", run.Spec.MpiHosts);
        Assert.Equal(Launch.Processes, run.Spec.Launch);

        // While the attempt runs, liveness keeps the other host's slots (they belong to the world), and its heartbeats say so.
        await BeatAsync(first, new RunningRun(job, 1));
        await LivenessAsync();
        Assert.Equal(4, (await HeldAsync(job)).Count);
        Assert.Equal([new RunningRun(job, 1)], (await BeatAsync(second)).Joined);
        var shown = (await _client.GetFromJsonAsync<HostDto>($"/v1/hosts/{second.Id}", WireJson.Options))!;
        Assert.All(shown.Slots, s => Assert.Equal(job, s.JobId));
    }

    /// <summary>The launching host reports the attempt interrupted because its world lost the other host (or could not
    /// reach it). That host still heartbeats (up but unreachable) or is not yet timed out (dead): without a hold the
    /// requeued job would be placed straight back onto it, attempt after attempt.</summary>
    [Fact]
    public async Task Finish_InterruptedNamingTheLostHost_HoldsItFromSpansDoublingUntilItRegistersAgain()
    {
        var (job, first, second, _) = await PlaceAcrossTwoAsync();
        async Task InterruptAsync(int attempt)
        {
            Assert.True((await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/start", new StartRunRequest(attempt), WireJson.Options)).IsSuccessStatusCode);
            var finished = await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/finish", new FinishRunRequest(attempt, RunOutcomes.Interrupted, 1,
                $"rank 2 failed: HostLost: host {second.MpiName} (ranks 2–3) could not be reached: its launcher ended before the world formed", second.MpiName), WireJson.Options);
            Assert.True(finished.IsSuccessStatusCode, await finished.Content.ReadAsStringAsync());
        }
        async Task<TimeSpan> HeldForAsync()
        {
            var shown = (await _client.GetFromJsonAsync<HostDto>($"/v1/hosts/{second.Id}", WireJson.Options))!;
            Assert.Contains($"job {job}", shown.HeldReason);
            Assert.Contains("could not be reached", shown.HeldReason);
            return shown.HeldFromSpansUntil!.Value - DateTimeOffset.UtcNow;
        }

        await InterruptAsync(1);
        Assert.Equal(JobStates.Queued, (await WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job))).State);
        Assert.InRange((await HeldForAsync()).TotalSeconds, 50, 60);
        Assert.Empty(await PassAsync());                                                    // only the first host's 2 slots may take it
        Assert.Empty(await HeldAsync(job));
        Assert.Null((await _client.GetFromJsonAsync<HostDto>($"/v1/hosts/{first.Id}", WireJson.Options))!.HeldFromSpansUntil);

        // The hold over, the job spans both again; lost again, the host is held twice as long.
        await WithDb(db => db.Hosts.Where(h => h.Id == second.Id).ExecuteUpdateAsync(s => s.SetProperty(h => h.HeldUntil, DateTime.UtcNow.AddSeconds(-1))));
        Assert.Single(await PassAsync());
        await InterruptAsync(2);
        Assert.InRange((await HeldForAsync()).TotalSeconds, 110, 120);
        Assert.Empty(await PassAsync());

        // Registering again (the host restarted) ends the hold: placed across both at once.
        await factory.RegisterHostAsync(second.Name, 2, mpiHost: second.MpiName);
        Assert.Null((await _client.GetFromJsonAsync<HostDto>($"/v1/hosts/{second.Id}", WireJson.Options))!.HeldFromSpansUntil);
        var binding = Assert.Single(await PassAsync());
        Assert.Equal(new[] { first.Id, second.Id }.Order(), binding.Parts.Select(p => p.HostId).Order());
        Assert.Equal(3, (await WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job))).Attempt);
    }

    /// <summary>A world that can never form (or a host that can never fetch the inputs) would be requeued forever: after
    /// five attempts in a row that trained nothing past where they started, the job fails naming the last reason. An
    /// attempt that trained further starts the count again.</summary>
    [Fact]
    public async Task Finish_InterruptedFiveTimesWithoutProgress_FailsTheJobNamingTheReason()
    {
        var (job, first, _, _) = await PlaceAcrossTwoAsync();
        async Task InterruptAsync(int attempt, int? step)
        {
            Assert.True((await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/start", new StartRunRequest(attempt), WireJson.Options)).IsSuccessStatusCode);
            if (step is { } s)
                Assert.True((await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/metrics",
                    new RunMetricsRequest(attempt, [new TrainerLogRecord { CurrentSteps = s, TotalSteps = 100, Loss = 1.0 }]), WireJson.Options)).IsSuccessStatusCode);
            Assert.True((await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/finish",
                new FinishRunRequest(attempt, RunOutcomes.Interrupted, 1, $"the host could not fetch the run's inputs (attempt {attempt})"), WireJson.Options)).IsSuccessStatusCode);
        }
        Task<LongSeqService.Scheduler.Data.Job> RowAsync() => WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job));

        int attempt = 1;
        await InterruptAsync(attempt, step: 3);                                             // trained steps 1–3: progress
        for (int i = 0; i < 4; i++)
        {
            Assert.Single(await PassAsync());
            await InterruptAsync(++attempt, step: i == 1 ? 2 : null);                        // step 2 again is not past 3
        }
        Assert.Equal((JobStates.Queued, 4), ((await RowAsync()).State, (await RowAsync()).StalledAttempts));
        Assert.Single(await PassAsync());
        await InterruptAsync(++attempt, step: 4);                                           // past 3: the count starts again
        Assert.Equal((JobStates.Queued, 0), ((await RowAsync()).State, (await RowAsync()).StalledAttempts));
        for (int i = 0; i < 5; i++)
        {
            Assert.Single(await PassAsync());
            await InterruptAsync(++attempt, step: null);
        }

        var row = await RowAsync();
        Assert.Equal(JobStates.Failed, row.State);
        Assert.Equal(11, row.Attempt);
        Assert.Contains("requeued 5 times in a row without training past step 4", row.Error);
        Assert.Contains("could not fetch the run's inputs (attempt 11)", row.Error);
        Assert.Empty(await HeldAsync(job));
        Assert.Empty(await PassAsync());
    }

    [Fact]
    public async Task Liveness_AnyHostOfTheSpanSilent_RequeuesTheAttemptAndFreesEveryHostsSlots()
    {
        var (job, first, second, _) = await PlaceAcrossTwoAsync();
        Assert.True((await first.Client.PostAsJsonAsync($"/v1/hosts/{first.Id}/runs/{job}/start", new StartRunRequest(1), WireJson.Options)).IsSuccessStatusCode);

        // The host that only holds slots goes silent (the launching one keeps heartbeating).
        await WithDb(db => db.Hosts.Where(h => h.Id == second.Id).ExecuteUpdateAsync(s => s.SetProperty(h => h.LastHeartbeatAt, DateTime.UtcNow.AddMinutes(-5))));
        await LivenessAsync();

        var row = await WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job));
        Assert.Equal((JobStates.Queued, (int?)null, 0, 1), (row.State, row.HostId, row.SpanHostIds.Length, row.Attempt));
        Assert.Empty(await HeldAsync(job));
        var reason = (await _client.ListAsync<JobEventDto>($"/v1/jobs/{job}/events"))!.Last().Reason;
        Assert.Contains($"host {second.Id} lost", reason);
        Assert.Contains("requeued", reason);
        // The launching host is told to stop the lost attempt.
        Assert.Equal([job], (await BeatAsync(first, new RunningRun(job, 1))).Stop);
    }

    [Fact]
    public async Task Register_HostOfTheSpanRestarts_RequeuesTheWorldThenPlacesItAgainOnBoth()
    {
        var (job, _, second, _) = await PlaceAcrossTwoAsync();

        await factory.RegisterHostAsync(second.Name, 2, mpiHost: second.MpiName);

        Assert.Equal(JobStates.Queued, await WithDb(db => db.Jobs.Where(j => j.Id == job).Select(j => j.State).FirstAsync()));
        Assert.Contains("restarted", (await _client.ListAsync<JobEventDto>($"/v1/jobs/{job}/events"))!.Last().Reason);
        Assert.Empty(await HeldAsync(job));
        var again = Assert.Single(await PassAsync());
        Assert.Equal(2, again.Parts.Count());
        Assert.Equal(2, await WithDb(db => db.Jobs.Where(j => j.Id == job).Select(j => j.Attempt).FirstAsync()));
    }

    [Fact]
    public async Task Register_BadMpiHost_Is422NamingTheField()
    {
        var name = $"bad-{Guid.NewGuid():N}"[..14];
        var response = await factory.Client(await factory.HostKeyFor(name)).PostAsJsonAsync("/v1/hosts/register",
            new RegisterHostRequest(name, [new SlotSpec("cpu", null)], null, "not a host;rm"), WireJson.Options);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("mpi_host", await response.Content.ReadAsStringAsync());
    }
}
