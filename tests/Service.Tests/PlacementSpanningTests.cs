using LongSeqService.Scheduler.Placement;

namespace LongSeqService.Service.Tests;

/// <summary>Placement of gangs over several hosts (<see cref="PlacementSteps.Span"/>): one host when one has
/// room, whole SP groups per host when the hosts have room for them, rings across hosts only when they must.</summary>
public sealed class PlacementSpanningTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static PendingJob Job(int sp, int dp = 1, int ageRank = 0) => new(Guid.NewGuid(), sp, dp, 0, T0.AddMinutes(ageRank));
    private static HostSnapshot Host(int id, int total, params int[] free) => new(id, free, total) { JoinsSpans = true };
    private static (int Host, int[] Slots)[] Parts(Binding b) => b.Parts.Select(p => (p.HostId, p.SlotIndexes.ToArray())).ToArray();

    [Fact]
    public void Plan_OneHostHasRoom_NeverSpans()
    {
        var binding = Assert.Single(PlacementSteps.Plan([Job(sp: 4)], [Host(1, 4, 0, 1), Host(2, 4, 0, 1, 2, 3)], spanHosts: true));
        Assert.Equal([(2, new[] { 0, 1, 2, 3 })], Parts(binding));
        Assert.Empty(binding.More);
    }

    [Fact]
    public void Plan_WithoutSpanHosts_LeavesAGangNoHostHoldsQueued() =>
        Assert.Empty(PlacementSteps.Plan([Job(sp: 4)], [Host(1, 2, 0, 1), Host(2, 2, 0, 1)]));

    [Fact]
    public void Plan_SpFourOnTwoHostsOfTwo_RanksFillTheHostsInTurn()
    {
        var binding = Assert.Single(PlacementSteps.Plan([Job(sp: 4)], [Host(1, 2, 0, 1), Host(2, 2, 0, 1)], spanHosts: true));
        Assert.Equal([(1, new[] { 0, 1 }), (2, new[] { 0, 1 })], Parts(binding));
    }

    [Fact]
    public void Span_RoomForWholeSpGroups_KeepsEachRingOnOneHostAndTheReplicasAcross()
    {
        // sp 2 × dp 3 = 6 ranks; host 1 has 3 free (room for one group), host 2 has 2 (one), host 3 has 5 (two):
        // host 3's two groups, then one group on the smaller of the other two (best fit), never 1 + 1 across.
        var binding = PlacementSteps.Span(Job(sp: 2, dp: 3), [Host(1, 4, 0, 1, 2), Host(2, 2, 0, 1), Host(3, 8, 1, 3, 4, 6, 7)])!;
        Assert.Equal([(3, new[] { 1, 3, 4, 6 }), (2, new[] { 0, 1 })], Parts(binding));
        Assert.All(binding.Parts, p => Assert.Equal(0, p.SlotIndexes.Count % 2));
    }

    [Fact]
    public void Span_GroupsLargerThanAnyHost_FillsTheFullestHostsFirst()
    {
        // sp 8: no host has 8 free; 5 + 3 crosses one host boundary, where 3 + 3 + 2 would cross two.
        var binding = PlacementSteps.Span(Job(sp: 8), [Host(1, 4, 0, 1, 2), Host(2, 8, 0, 1, 2, 3, 4), Host(3, 4, 0, 1, 2)])!;
        Assert.Equal([(2, new[] { 0, 1, 2, 3, 4 }), (1, new[] { 0, 1, 2 })], Parts(binding));
    }

    [Fact]
    public void Span_NotEnoughFreeSlotsAnywhere_PlacesNothing()
    {
        Assert.Null(PlacementSteps.Span(Job(sp: 4, dp: 2), [Host(1, 4, 0, 1, 2), Host(2, 4, 0, 1, 2, 3)]));
        // Slots too small for a rank do not count.
        var big = Job(sp: 4) with { RankMemoryBytes = 8L << 30 };
        Assert.Null(PlacementSteps.Span(big, [new HostSnapshot(1, [0, 1], 2, 16L << 30) { JoinsSpans = true }, new HostSnapshot(2, [0, 1], 2, 4L << 30) { JoinsSpans = true }]));
    }

    [Fact]
    public void Plan_SpanningJob_TakesItsSlotsOnEveryHostFromLaterJobs()
    {
        var first = Job(sp: 4, ageRank: 0);
        var second = Job(sp: 1, ageRank: 1);
        var third = Job(sp: 1, ageRank: 2);
        var plan = PlacementSteps.Plan([first, second, third], [Host(1, 3, 0, 1, 2), Host(2, 2, 0, 1)], spanHosts: true);
        Assert.Equal([(1, new[] { 0, 1, 2 }), (2, new[] { 0 })], Parts(plan[0]));
        Assert.Equal([(2, new[] { 1 })], Parts(plan[1]));
        Assert.Equal(2, plan.Count);                                        // the third finds no free slot
    }

    [Fact]
    public void Span_OnlyOverHostsThatJoinSpans()
    {
        var loner = new HostSnapshot(3, [0, 1], 2);                                       // registered no MPI host name
        Assert.Null(PlacementSteps.Span(Job(sp: 4), [Host(1, 2, 0, 1), loner]));
        Assert.Equal([(1, new[] { 0, 1 }), (2, new[] { 0, 1 })], Parts(PlacementSteps.Span(Job(sp: 4), [Host(1, 2, 0, 1), loner, Host(2, 2, 0, 1)])!));
    }
}
