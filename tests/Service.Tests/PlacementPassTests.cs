using LongSeqService.Shared.Hosts;
using System.Net.Http.Json;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Liveness;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace LongSeqService.Service.Tests;

/// <summary>Placement and liveness against the database: binding is all-or-nothing and cannot
/// double-book, even with passes and cancels racing. Each test uses hosts of its own, and clears the
/// queue first, since the class shares one database.</summary>
public sealed class PlacementPassTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _dataset = null!;

    public async Task InitializeAsync()
    {
        (_client, _) = await factory.TenantAsync();
        await factory.RegisterHostAsync("big-enough", 8); // so submissions of up to 8 ranks are accepted
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
        await factory.EmptyQueueAndHostsAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<Guid> SubmitAsync(int sp, int priority = 0)
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = sp, priority });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
    }

    private async Task<IReadOnlyList<Binding>> PassAsync()
    {
        await using var scope = factory.Scope();
        return await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync();
    }

    private async Task<T> WithDb<T>(Func<ServiceDb, Task<T>> read)
    {
        await using var scope = factory.Scope();
        return await read(factory.Db(scope));
    }

    [Fact]
    public async Task Pass_BindsJobToSlotsAndRecordsTheEvent()
    {
        var host = await factory.RegisterHostAsync($"h-{Guid.NewGuid():N}", 4);
        var job = await SubmitAsync(sp: 2);
        var binding = Assert.Single(await PassAsync());
        Assert.Equal((job, host.HostId), (binding.JobId, binding.HostId));
        var row = await WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job));
        Assert.Equal((JobStates.Scheduled, host.HostId, 1), (row.State, row.HostId, row.Attempt));
        var held = await WithDb(db => db.HostSlots.Where(s => s.JobId == job).OrderBy(s => s.Index).Select(s => s.Index).ToListAsync());
        Assert.Equal([0, 1], held);
        Assert.Empty(await PassAsync()); // nothing left to place: a second pass changes nothing
    }

    [Fact]
    public async Task Pass_GangThatFitsNoSingleHost_StaysQueuedAndTakesNoSlot()
    {
        await factory.RegisterHostAsync($"a-{Guid.NewGuid():N}", 2);
        await factory.RegisterHostAsync($"b-{Guid.NewGuid():N}", 2);
        var job = await SubmitAsync(sp: 4);
        Assert.Empty(await PassAsync());
        Assert.Equal(JobStates.Queued, await WithDb(db => db.Jobs.Where(j => j.Id == job).Select(j => j.State).FirstAsync()));
        Assert.Equal(0, await WithDb(db => db.HostSlots.CountAsync(s => s.JobId == job)));
    }

    [Fact]
    public async Task Pass_HigherPriorityGoesFirst()
    {
        await factory.RegisterHostAsync($"p-{Guid.NewGuid():N}", 2);
        var low = await SubmitAsync(sp: 2, priority: 0);
        var high = await SubmitAsync(sp: 2, priority: 5);
        Assert.Equal(high, Assert.Single(await PassAsync()).JobId);
        Assert.Equal(JobStates.Queued, await WithDb(db => db.Jobs.Where(j => j.Id == low).Select(j => j.State).FirstAsync()));
    }

    [Fact]
    public async Task ConcurrentPasses_NeverDoubleBook()
    {
        for (int h = 0; h < 3; h++) await factory.RegisterHostAsync($"c{h}-{Guid.NewGuid():N}", 4);
        var jobs = new List<Guid>();
        for (int i = 0; i < 24; i++) jobs.Add(await SubmitAsync(sp: 1 + i % 3));
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(PassAsync)));

        var bound = results.SelectMany(r => r).ToList();
        Assert.Equal(bound.Count, bound.Select(b => b.JobId).Distinct().Count()); // no job bound by two passes
        await AssertConsistentAsync(jobs);
        // Passes that lost a race leave the rest for the next pass; after one more, best fit over
        // 1/2/3-rank jobs has filled all 12 slots.
        await PassAsync();
        Assert.Equal(12, await AssertConsistentAsync(jobs));
    }

    [Fact]
    public async Task Pass_JobCancelledWhileThePlanIsBound_TheRestIsStillBoundOneByOne()
    {
        await factory.RegisterHostAsync($"f-{Guid.NewGuid():N}", 4);
        var a = await SubmitAsync(sp: 1);
        var b = await SubmitAsync(sp: 1);
        var c = await SubmitAsync(sp: 2);
        await using var scope = factory.Scope();
        var db = factory.Db(scope);
        // Cancel b in a transaction left open: the pass snapshots b as queued, then its bind of the whole
        // plan waits on b's row lock; once b's cancel commits, that bind takes 2 rows of 3 and rolls back.
        Task<IReadOnlyList<Binding>> pass;
        await using (var tx = await db.Database.BeginTransactionAsync())
        {
            await db.Jobs.Where(j => j.Id == b).ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Cancelled));
            pass = Task.Run(PassAsync);
            await WaitForABlockedStatementAsync();
            await tx.CommitAsync();
        }
        var bound = await pass;
        Assert.Equal([a, c], bound.Select(x => x.JobId));
        Assert.Equal(JobStates.Cancelled, await WithDb(d => d.Jobs.Where(j => j.Id == b).Select(j => j.State).FirstAsync()));
        Assert.Equal(3, await AssertConsistentAsync([a, b, c]));
    }

    /// <summary>Waits until some statement in this test's database waits for a row lock.</summary>
    private async Task WaitForABlockedStatementAsync()
    {
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); waited.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(20))
            if (await WithDb(d => d.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").SingleAsync()) > 0)
                return;
        throw new TimeoutException("the placement pass never blocked on the open transaction");
    }

    /// <summary>Every scheduled job holds exactly its gang on its one host; queued jobs hold nothing.
    /// Returns the number of slots held.</summary>
    private async Task<int> AssertConsistentAsync(List<Guid> jobs)
    {
        var slots = await WithDb(db => db.HostSlots.AsNoTracking().Where(s => s.JobId != null && jobs.Contains(s.JobId!.Value)).ToListAsync());
        var states = await WithDb(db => db.Jobs.AsNoTracking().Where(j => jobs.Contains(j.Id)).ToListAsync());
        foreach (var job in states.Where(j => j.State == JobStates.Scheduled))
        {
            var held = slots.Where(s => s.JobId == job.Id).ToList();
            Assert.Equal(job.WorldSize, held.Count);
            Assert.All(held, s => Assert.Equal(job.HostId, s.HostId));
            Assert.Equal(1, job.Attempt);
        }
        Assert.All(states.Where(j => j.State == JobStates.Queued), j => Assert.DoesNotContain(slots, s => s.JobId == j.Id));
        return slots.Count;
    }

    [Fact]
    public async Task CancelDuringPlacement_LeavesNoSlotWithACancelledJob()
    {
        await factory.RegisterHostAsync($"r-{Guid.NewGuid():N}", 2);
        for (int round = 0; round < 10; round++)
        {
            var job = await SubmitAsync(sp: 2);
            var pass = Task.Run(PassAsync);
            var cancel = Task.Run(async () => await _client.PostAsync($"/v1/jobs/{job}/cancel", null));
            await Task.WhenAll(pass, cancel);
            var state = await WithDb(db => db.Jobs.Where(j => j.Id == job).Select(j => j.State).FirstAsync());
            int held = await WithDb(db => db.HostSlots.CountAsync(s => s.JobId == job));
            // Either the cancel saw it queued (cancelled, no slots) or placement won (cancelling, still holding
            // its slots until its host stops it).
            Assert.True((state, held) is (JobStates.Cancelled, 0) or (JobStates.Cancelling, 2), $"{state} with {held} slots");
            await using var scope = factory.Scope();
            await factory.Db(scope).HostSlots.ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null));
        }
    }

    [Fact]
    public async Task Liveness_SilentHost_IsLostAndItsRunGoesBackToQueued()
    {
        var host = await factory.RegisterHostAsync($"l-{Guid.NewGuid():N}", 2);
        var job = await SubmitAsync(sp: 2);
        Assert.Single(await PassAsync());
        await WithDb(db => db.Hosts.Where(h => h.Id == host.HostId).ExecuteUpdateAsync(s => s.SetProperty(h => h.LastHeartbeatAt, DateTime.UtcNow.AddMinutes(-5))));

        await using (var scope = factory.Scope()) await scope.ServiceProvider.GetRequiredService<LivenessCheck>().RunAsync();

        Assert.Equal(HostStates.Lost, await WithDb(db => db.Hosts.Where(h => h.Id == host.HostId).Select(h => h.State).FirstAsync()));
        var row = await WithDb(db => db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job));
        Assert.Equal((JobStates.Queued, (int?)null, 1), (row.State, row.HostId, row.Attempt));
        Assert.Equal(0, await WithDb(db => db.HostSlots.CountAsync(s => s.JobId == job)));
        var events = await _client.ListAsync<JobEventDto>($"/v1/jobs/{job}/events");
        Assert.Contains("lost", events!.Last().Reason);

        // The host comes back: the job is placed again under a new attempt.
        await factory.RegisterHostAsync((await WithDb(db => db.Hosts.Where(h => h.Id == host.HostId).Select(h => h.Name).FirstAsync())), 2);
        Assert.Single(await PassAsync());
        Assert.Equal(2, await WithDb(db => db.Jobs.Where(j => j.Id == job).Select(j => j.Attempt).FirstAsync()));
    }

    [Fact]
    public async Task Register_SameHostAgain_RequeuesWhatItWasRunning()
    {
        var name = $"restart-{Guid.NewGuid():N}";
        await factory.RegisterHostAsync(name, 2);
        var job = await SubmitAsync(sp: 1);
        Assert.Single(await PassAsync());
        await factory.RegisterHostAsync(name, 2);
        Assert.Equal(JobStates.Queued, await WithDb(db => db.Jobs.Where(j => j.Id == job).Select(j => j.State).FirstAsync()));
        Assert.Contains("restarted", (await _client.ListAsync<JobEventDto>($"/v1/jobs/{job}/events"))!.Last().Reason);
    }

    [Fact]
    public async Task StateMachine_ConcurrentMovesFromOneState_ExactlyOneWins()
    {
        var job = await SubmitAsync(sp: 1);
        var wins = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            await using var scope = factory.Scope();
            var machine = scope.ServiceProvider.GetRequiredService<JobStateMachine>();
            return await machine.TryMoveAsync(job, JobStates.Queued, i % 2 == 0 ? JobStates.Cancelled : JobStates.Failed, $"writer {i}");
        })));
        Assert.Single(wins, w => w);
        Assert.Equal(3, await WithDb(db => db.JobEvents.CountAsync(e => e.JobId == job)));
    }
}
