using LongSeqService.Scheduler.Placement;

namespace LongSeqService.Service.Tests;

/// <summary>Placement's memory filter: a rank goes only on a slot whose memory covers its predicted peak.</summary>
public class PlacementMemoryFilterTests
{
    private static readonly DateTime T0 = new(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Plan_RankLargerThanSmallHostsSlots_GoesToTheHostThatHoldsIt()
    {
        var job = new PendingJob(Guid.NewGuid(), 2, 1, 0, T0, RankMemoryBytes: 5L << 30);
        // Best fit would pick host 1 (fewest slots left), but its slots hold 4 GiB.
        var hosts = new[] { new HostSnapshot(1, [0, 1], 2, 4L << 30), new HostSnapshot(2, [0, 1, 2, 3], 4, 8L << 30) };

        var plan = PlacementSteps.Plan([job], hosts);

        Assert.Equal(2, Assert.Single(plan).HostId);
    }

    [Fact]
    public void Plan_NoSlotHoldsRank_PlacesNothing()
    {
        var job = new PendingJob(Guid.NewGuid(), 1, 1, 0, T0, RankMemoryBytes: 9L << 30);

        Assert.Empty(PlacementSteps.Plan([job], [new HostSnapshot(1, [0, 1], 2, 8L << 30)]));
    }

    [Fact]
    public void Filter_UnknownMemory_IsNoConstraint()
    {
        var unknownJob = new PendingJob(Guid.NewGuid(), 1, 1, 0, T0);
        var bigJob = new PendingJob(Guid.NewGuid(), 1, 1, 0, T0, RankMemoryBytes: 1L << 40);
        var unknownHost = new HostSnapshot(1, [0], 1);

        Assert.Single(PlacementSteps.Filter(unknownJob, [new HostSnapshot(2, [0], 1, 1L << 20)]));
        Assert.Single(PlacementSteps.Filter(bigJob, [unknownHost]));
    }
}
