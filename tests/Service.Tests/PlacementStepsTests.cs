using LongSeqService.Scheduler.Placement;

namespace LongSeqService.Service.Tests;

/// <summary>The pure placement steps over hand-built snapshots.</summary>
public sealed class PlacementStepsTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static PendingJob Job(int sp, int dp = 1, int priority = 0, int ageRank = 0) =>
        new(Guid.NewGuid(), sp, dp, priority, T0.AddMinutes(ageRank));
    private static HostSnapshot Host(int id, int total, params int[] free) => new(id, free, total);

    [Fact]
    public void Plan_GangLargerThanAnyHostsFreeSlots_PlacesNothing()
    {
        // 4 free slots in all, but no host has 4: a gang is never split.
        var plan = PlacementSteps.Plan([Job(sp: 4)], [Host(1, 4, 0, 1), Host(2, 4, 2, 3)]);
        Assert.Empty(plan);
    }

    [Fact]
    public void Plan_SpGroup_StaysOnOneHost()
    {
        var job = Job(sp: 2, dp: 2);
        var binding = Assert.Single(PlacementSteps.Plan([job], [Host(1, 2, 0, 1), Host(2, 2, 0, 1), Host(3, 8, 0, 1, 2, 3, 4, 5)]));
        Assert.Equal(3, binding.HostId);
        Assert.Equal([0, 1, 2, 3], binding.SlotIndexes);
    }

    [Fact]
    public void Score_PrefersTheTightestFit()
    {
        var job = Job(sp: 2);
        var hosts = new[] { Host(1, 8, 0, 1, 2, 3, 4), Host(2, 4, 1, 3), Host(3, 4, 0, 1, 2) };
        Assert.Equal(2, PlacementSteps.Score(job, PlacementSteps.Filter(job, hosts))!.HostId);
    }

    [Fact]
    public void Bind_TakesTheLowestFreeIndexes()
    {
        var binding = PlacementSteps.Bind(Job(sp: 2), Host(1, 8, 7, 5, 2, 6));
        Assert.Equal([2, 5], binding.SlotIndexes);
    }

    [Fact]
    public void Plan_OrdersByPriorityThenAge()
    {
        var old = Job(sp: 2, priority: 0, ageRank: 0);
        var young = Job(sp: 2, priority: 0, ageRank: 5);
        var urgent = Job(sp: 2, priority: 10, ageRank: 9);
        // Room for two of the three: the urgent one, then the older of the others.
        var plan = PlacementSteps.Plan([young, old, urgent], [Host(1, 4, 0, 1, 2, 3)]);
        Assert.Equal([urgent.JobId, old.JobId], plan.Select(b => b.JobId));
    }

    [Fact]
    public void Plan_NeverGivesOneSlotTwice()
    {
        var jobs = Enumerable.Range(0, 50).Select(i => Job(sp: 1 + i % 3, ageRank: i)).ToList();
        var hosts = Enumerable.Range(1, 5).Select(h => Host(h, 4, 0, 1, 2, 3)).ToList();
        var plan = PlacementSteps.Plan(jobs, hosts);
        var slots = plan.SelectMany(b => b.SlotIndexes.Select(s => (b.HostId, s))).ToList();
        Assert.Equal(slots.Count, slots.Distinct().Count());
        Assert.All(plan, b => Assert.Equal(jobs.Single(j => j.JobId == b.JobId).WorldSize, b.SlotIndexes.Count));
        Assert.Equal(20, slots.Count); // best fit fills every one of the 20 slots here
    }

    [Fact]
    public void Plan_BigJobThatDoesNotFit_DoesNotBlockSmallerOnes()
    {
        var big = Job(sp: 8, ageRank: 0);
        var small = Job(sp: 1, ageRank: 1);
        var binding = Assert.Single(PlacementSteps.Plan([big, small], [Host(1, 4, 0, 1, 2, 3)]));
        Assert.Equal(small.JobId, binding.JobId);
    }
}
