namespace LongSeqService.Trainer.Host;

/// <summary>How a trainer host runs: which API, its credential, its slots, and how to launch the trainer.</summary>
public sealed record HostOptions
{
    public required Uri Api { get; init; }
    public required string Token { get; init; }
    public int Slots { get; init; } = 4;
    /// <summary>Each slot's memory budget, reported at registration (the memory model's budget for placement); null: unknown.</summary>
    public long? SlotMemoryBytes { get; init; }
    public string Device { get; init; } = "cpu";
    public string Name { get; init; } = Environment.MachineName;
    /// <summary>The Hangfire database; when null, the one the API hands out at registration.</summary>
    public string? Database { get; init; }
    /// <summary>The trainer CLI to launch per run, e.g. ["dotnet", "/app/trainer.dll"]; "train &lt;config&gt;" is appended.</summary>
    public required IReadOnlyList<string> TrainerCommand { get; init; }
    /// <summary>How often the trainer log is read and forwarded.</summary>
    public TimeSpan LogPollInterval { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>After SIGTERM, how long a cancelled trainer gets before SIGKILL.</summary>
    public TimeSpan KillGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>This very executable (the trainer CLI hosts itself): the apphost, or `dotnet trainer.dll`.</summary>
    public static IReadOnlyList<string> SelfCommand()
    {
        var process = Environment.ProcessPath ?? "trainer";
        var entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" && entry is { Length: > 0 } ? [process, entry] : [process];
    }
}
