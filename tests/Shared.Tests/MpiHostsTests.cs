using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Tests;

/// <summary><c>mpi_hosts</c>: parsed in rank order, each bad item and each rule it breaks named.</summary>
public class MpiHostsTests
{
    private static readonly JobSpec Spanning = new()
    {
        ModelNameOrPath = "builtin:tiny-llama", Dataset = "d.json", CutoffLen = 256, SequenceParallelSize = 4, Launch = Launch.Processes, MpiHosts = "hA:2,10.0.0.2:2",
    };

    [Fact]
    public void Parse_HostsInOrder_RanksFillEachHostInTurn()
    {
        var hosts = MpiHosts.Parse("hA:2, 10.0.0.2:3", out var error);
        Assert.Null(error);
        Assert.Equal([new MpiHost("hA", 2), new MpiHost("10.0.0.2", 3)], hosts);
        Assert.Equal(["hA", "hA", "10.0.0.2", "10.0.0.2", "10.0.0.2"], Enumerable.Range(0, 5).Select(r => MpiHosts.HostOf(hosts, r).Name));
        Assert.Equal("hA:2,10.0.0.2:3", MpiHosts.HydraList(hosts));
    }

    [Theory]
    [InlineData("hA", "'hA' is not HOST:SLOTS")]
    [InlineData("hA:0", "'hA:0' is not HOST:SLOTS")]
    [InlineData("hA:2,,hB:2", "'' is not HOST:SLOTS")]
    [InlineData("h A:2", "'h A:2' is not HOST:SLOTS")]
    [InlineData("hA:2,hA:2", "host 'hA' is listed twice")]
    public void Parse_BadList_SaysWhatIsWrong(string text, string expected)
    {
        Assert.Empty(MpiHosts.Parse(text, out var error));
        Assert.StartsWith(expected, error);
    }

    [Fact]
    public void Validate_SpanningWorldOfProcesses_HasNoErrors() => Assert.Empty(JobSpecValidator.Validate(Spanning));

    [Theory]
    [InlineData("hA:2,hB:1", "mpi_hosts", "the slots add up to 3")]
    [InlineData("hA:two", "mpi_hosts", "is not HOST:SLOTS")]
    public void Validate_HostsNotMatchingTheWorld_NamesMpiHosts(string hosts, string field, string message)
    {
        var e = Assert.Single(JobSpecValidator.Validate(Spanning with { MpiHosts = hosts }));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Validate_SpanningThreads_AreRefusedAndZeroIsNot()
    {
        Assert.Contains("launch: processes", Assert.Single(JobSpecValidator.Validate(Spanning with { Launch = Launch.Threads })).Message);
        Assert.Empty(JobSpecValidator.Validate(Spanning with { ZeroStage = 3 }));       // the partitions reach rank 0 over MPI
    }
}
