using LongSeqService.Trainer.Parallel.Mpi;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>The host a trainer's last error line names as lost: what a trainer host reports as <c>lost_host</c>, so the API
/// holds that host out of spanning worlds instead of placing the requeued job straight back onto it.</summary>
public sealed class HostLostLineTests
{
    [Theory]
    [InlineData("rank 2 failed: HostLost: host lsq-span-1.b (ranks 2–3) was lost: its Hydra proxy ended while the world ran, and mpiexec ended every rank", "lsq-span-1.b")]
    [InlineData("rank 4 failed: HostLost: host 10.78.0.3 (ranks 4–7) could not be reached: its launcher ended before the world formed (ssh: connect refused); the world was a:4,10.78.0.3:4", "10.78.0.3")]
    [InlineData("rank 0 failed: HostLost: a host was lost (the connection of its Hydra proxy to mpiexec closed); the world ran on a:2,b:2", null)]
    [InlineData("rank 1 failed: InvalidOperationException: host hB (ranks 2–3) was lost", null)]
    [InlineData(null, null)]
    public void LostHostName_NamesTheHostOnlyOfAHostLostLine(string? line, string? expected)
    {
        Assert.Equal(line != null && line.Contains("HostLost"), MpiJob.SaysHostLost(line));
        Assert.Equal(expected, MpiJob.LostHostName(line));
    }
}
