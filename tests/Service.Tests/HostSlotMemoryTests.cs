using LongSeqService.Trainer.Host;

namespace LongSeqService.Service.Tests;

/// <summary><c>trainer host --slot-memory</c>: each CPU slot's budget, which registration reports and the memory model fits ranks into.</summary>
public class HostSlotMemoryTests
{
    [Fact]
    public void HostCommand_SlotMemory_ParsesBinarySizes()
    {
        Assert.Equal(6L << 30, HostCommand.Parse(["--api", "http://h:5080", "--token", "k", "--slot-memory", "6G"]).SlotMemoryBytes);
        Assert.Null(HostCommand.Parse(["--api", "http://h:5080", "--token", "k"]).SlotMemoryBytes);
    }

    [Fact]
    public void HostCommand_BadSlotMemory_NamesTheOption()
    {
        var e = Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h:5080", "--token", "k", "--slot-memory", "lots"]));
        Assert.Contains("--slot-memory", e.Message);
    }
}
