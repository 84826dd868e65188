namespace LongSeqService.Trainer.Host;

/// <summary>How a trainer host runs: which API, its credential, its slots, where it keeps its state, and how to launch the trainer.</summary>
public sealed record HostOptions
{
    public required Uri Api { get; init; }
    /// <summary>The host key (read from a file or the environment, never the command line).</summary>
    public required string Token { get; init; }
    public int Slots { get; init; } = 4;
    /// <summary>Each slot's memory budget, reported at registration (the memory model's budget for placement); null: unknown.</summary>
    public long? SlotMemoryBytes { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>How this host reaches artifacts (<see cref="Shared.Hosts.ArtifactAccess"/>): shared (the API's data directory is mounted
    /// here at the same path) or remote (inputs downloaded into <c>StateDir/cache</c>, outputs uploaded to the API).</summary>
    public string Artifacts { get; init; } = Shared.Hosts.ArtifactAccess.Shared;
    /// <summary>The name other hosts' MPI launcher reaches this host by (registered, it goes into a spanning world's <c>mpi_hosts</c>);
    /// null: this host joins no world that spans hosts.</summary>
    public string? MpiHost { get; init; }
    /// <summary>With remote artifacts: the most the input cache (<c>StateDir/cache</c>) keeps; the files used least recently
    /// go first (<see cref="ArtifactCache"/>). Null: no limit.</summary>
    public long? CacheMaxBytes { get; init; }
    /// <summary>How often a remote run's local output folder is checked for complete checkpoints to upload.</summary>
    public TimeSpan UploadPollInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>How often the final upload of a remote run is tried (2 s apart) before the run fails.</summary>
    public int MaxUploadTries { get; init; } = 60;
    public string Name { get; init; } = Environment.MachineName;
    /// <summary>The host's own directory: the report spool and the lease file. Must survive a restart.</summary>
    public required string StateDir { get; init; }
    /// <summary>The trainer CLI to launch per run, e.g. ["dotnet", "/app/trainer.dll"]; "train &lt;config&gt;" is appended.</summary>
    public required IReadOnlyList<string> TrainerCommand { get; init; }
    /// <summary>How often the trainer log is read and spooled.</summary>
    public TimeSpan LogPollInterval { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>After SIGTERM, how long a cancelled trainer gets before SIGKILL.</summary>
    public TimeSpan KillGrace { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How often a trainer killed by a signal is restarted from its newest checkpoint before the run fails.</summary>
    public int MaxTrainerRestarts { get; init; } = 2;
    /// <summary>At shutdown, how long the spool may try to deliver what is left (the rest is replayed on the next start).</summary>
    public TimeSpan ShutdownFlush { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>This very executable (the trainer CLI hosts itself): the apphost, or `dotnet trainer.dll`.</summary>
    public static IReadOnlyList<string> SelfCommand()
    {
        var process = Environment.ProcessPath ?? "trainer";
        var entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" && entry is { Length: > 0 } ? [process, entry] : [process];
    }
}
