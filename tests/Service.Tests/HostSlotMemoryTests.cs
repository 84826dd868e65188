using LongSeqService.Trainer.Host;

namespace LongSeqService.Service.Tests;

/// <summary><c>trainer host --slot-memory</c>: each CPU slot's budget, which registration reports and the memory model fits ranks into.</summary>
public class HostSlotMemoryTests : IDisposable
{
    private readonly string _keyFile = Path.GetTempFileName();

    public HostSlotMemoryTests() => File.WriteAllText(_keyFile, "lsk_test");

    public void Dispose() => File.Delete(_keyFile);

    [Fact]
    public void HostCommand_SlotMemory_ParsesBinarySizes()
    {
        Assert.Equal(6L << 30, HostCommand.Parse(["--api", "http://h:5080", "--token-file", _keyFile, "--slot-memory", "6G"]).SlotMemoryBytes);
        Assert.Null(HostCommand.Parse(["--api", "http://h:5080", "--token-file", _keyFile]).SlotMemoryBytes);
    }

    [Fact]
    public void HostCommand_BadSlotMemory_NamesTheOption()
    {
        var e = Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h:5080", "--token-file", _keyFile, "--slot-memory", "lots"]));
        Assert.Contains("--slot-memory", e.Message);
    }
}
