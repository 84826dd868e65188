using System.Diagnostics;
using System.Text.Json.Nodes;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace LongSeqService.Service.Tests;

/// <summary>
/// docs/benchmarks.md "Service: API latency and placement": one placement pass over 1,000 queued jobs
/// (sequence_parallel_size × data_parallel_size of 1 to 8 slots) and 100 online hosts of 8 slots,
/// seeded straight into the database. The test prints the pass's wall time and asserts only that the
/// result is right — every placed gang whole on one host, no slot booked twice, nothing left that fits,
/// every run dispatched to its host's queue — never the time (shared 2-core machines).
/// </summary>
[Trait("Category", "Slow")]
public sealed class PlacementBenchmarkTests(ServiceFactory factory, ITestOutputHelper output) : IClassFixture<ServiceFactory>
{
    private const int Hosts = 100, SlotsPerHost = 8, Jobs = 1000;
    /// <summary>(sequence_parallel_size, data_parallel_size) with 1 to 8 ranks.</summary>
    private static readonly (int Sp, int Dp)[] Shapes = [(1, 1), (2, 1), (4, 1), (8, 1), (1, 2), (2, 2), (4, 2), (3, 1), (6, 1), (1, 4), (2, 4), (1, 8)];

    [Fact]
    public async Task Pass_ThousandJobsOnHundredHosts_PlacesConsistentlyAndPrintsItsTime()
    {
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("LONGSEQ_BENCH_ROUNDS"), out var r) ? r : 3;
        var times = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            var (jobIds, hostIds) = await SeedAsync(seed: round);
            var sw = Stopwatch.StartNew();
            IReadOnlyList<Binding> bound;
            await using (var scope = factory.Scope())
            {
                // The pass logs where its time went (snapshot and plan, bind, dispatch): show that here.
                var pass = ActivatorUtilities.CreateInstance<PlacementPass>(scope.ServiceProvider, new OutputLogger<PlacementPass>(output));
                bound = await pass.RunAsync();
            }
            sw.Stop();
            times.Add(sw.Elapsed.TotalMilliseconds);
            int slotsHeld = await AssertConsistentAsync(jobIds, hostIds, bound);
            output.WriteLine($"round {round}: placed {bound.Count} of {Jobs} queued jobs ({slotsHeld} of {Hosts * SlotsPerHost} slots) in {sw.Elapsed.TotalMilliseconds:F0} ms");
        }
        times.Sort();
        output.WriteLine($"placement pass, {Jobs} queued jobs on {Hosts} hosts x {SlotsPerHost} slots: median {times[times.Count / 2]:F0} ms, min {times[0]:F0} ms, max {times[^1]:F0} ms over {rounds} round(s)");
    }

    /// <summary>Retires whatever earlier rounds left, then inserts fresh hosts (online, all slots free) and queued jobs.</summary>
    private async Task<(List<Guid> Jobs, List<int> Hosts)> SeedAsync(int seed)
    {
        await using var scope = factory.Scope();
        var db = factory.Db(scope);
        await db.Jobs.Where(j => !JobStates.Terminal.Contains(j.State)).ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Cancelled));
        await db.HostSlots.ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null));
        await db.Hosts.ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost));

        var now = DateTime.UtcNow;
        var tenant = new Tenant { Id = Guid.NewGuid(), Name = $"bench-{Guid.NewGuid():N}", CreatedAt = now };
        db.Tenants.Add(tenant);
        var hosts = Enumerable.Range(0, Hosts).Select(i => new TrainerHost
        {
            Name = $"bench-{seed}-{i}-{Guid.NewGuid():N}", State = HostStates.Online, RegisteredAt = now, LastHeartbeatAt = now,
            Slots = Enumerable.Range(0, SlotsPerHost).Select(s => new HostSlot { Index = s, Device = "cpu" }).ToList(),
        }).ToList();
        db.Hosts.AddRange(hosts);
        var random = new Random(seed);
        var jobs = new List<Job>();
        for (int i = 0; i < Jobs; i++)
        {
            var (sp, dp) = Shapes[random.Next(Shapes.Length)];
            var spec = JobSpecParser.FromJson(new JsonObject
            {
                ["model_name_or_path"] = "builtin:tiny-llama", ["dataset"] = "ds_bench", ["sequence_parallel_size"] = sp, ["data_parallel_size"] = dp,
            });
            jobs.Add(new Job
            {
                Id = Guid.CreateVersion7(), TenantId = tenant.Id, State = JobStates.Queued, Spec = JobSpecParser.ToJson(spec).ToJsonString(),
                Model = spec.ModelNameOrPath!, Stage = spec.Stage.Wire(), DatasetId = "ds_bench", SequenceParallelSize = sp, DataParallelSize = dp,
                WorldSize = sp * dp, Priority = random.Next(10) == 0 ? 5 : 0, CreatedAt = now.AddMilliseconds(i), UpdatedAt = now,
            });
        }
        db.Jobs.AddRange(jobs);
        await db.SaveChangesAsync();
        return (jobs.Select(j => j.Id).ToList(), hosts.Select(h => h.Id).ToList());
    }

    /// <summary>Every bound job is scheduled on its host holding exactly its gang there; queued jobs hold
    /// nothing; no queued job would fit the free slots left; each bound run is on its host's queue.
    /// Returns the number of slots held.</summary>
    private async Task<int> AssertConsistentAsync(List<Guid> jobIds, List<int> hostIds, IReadOnlyList<Binding> bound)
    {
        await using var scope = factory.Scope();
        var db = factory.Db(scope);
        var jobs = await db.Jobs.AsNoTracking().Where(j => jobIds.Contains(j.Id)).ToDictionaryAsync(j => j.Id);
        var slots = await db.HostSlots.AsNoTracking().Where(s => hostIds.Contains(s.HostId)).ToListAsync();

        Assert.NotEmpty(bound);
        Assert.Equal(bound.Count, bound.Select(b => b.JobId).Distinct().Count());
        var boundIds = bound.Select(b => b.JobId).ToHashSet();
        foreach (var b in bound)
        {
            var job = jobs[b.JobId];
            Assert.Equal((JobStates.Scheduled, (int?)b.HostId, 1), (job.State, job.HostId, job.Attempt));
            var held = slots.Where(s => s.JobId == b.JobId).ToList();
            Assert.Equal(job.WorldSize, held.Count);
            Assert.All(held, s => Assert.Equal(b.HostId, s.HostId)); // the whole gang on one host
            Assert.Equal(b.SlotIndexes.Order(), held.Select(s => s.Index).Order());
        }
        // A slot row holds one job id, so double booking would show as a gang short of slots (above) or as
        // slots of a job that is not bound; and nothing queued may hold a slot.
        Assert.All(slots.Where(s => s.JobId != null), s => Assert.Contains(s.JobId!.Value, boundIds));
        Assert.All(jobs.Values.Where(j => !boundIds.Contains(j.Id)), j => Assert.Equal(JobStates.Queued, j.State));
        // The pass walks the whole queue, and free slots only shrink as it goes: nothing left would fit now.
        int mostFree = slots.GroupBy(s => s.HostId).Max(g => g.Count(s => s.JobId == null));
        Assert.All(jobs.Values.Where(j => j.State == JobStates.Queued), j => Assert.True(j.WorldSize > mostFree, $"job of {j.WorldSize} ranks left queued with a host of {mostFree} free slots"));
        // One queued → scheduled event per bound job.
        Assert.Equal(bound.Count, await db.JobEvents.CountAsync(e => boundIds.Contains(e.JobId) && e.ToState == JobStates.Scheduled));
        // Each bound run is the one its job row names: that is the lease its host's next heartbeat gets.
        Assert.All(bound, b => Assert.Equal((JobStates.Scheduled, (int?)b.HostId), (jobs[b.JobId].State, jobs[b.JobId].HostId)));
        return slots.Count(s => s.JobId != null);
    }
}

/// <summary>An ILogger that writes Information and above to the test's output.</summary>
internal sealed class OutputLogger<T>(ITestOutputHelper output) : ILogger<T>
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel)) output.WriteLine($"  [{typeof(T).Name}] {formatter(state, exception)}");
    }
}
