namespace LongSeqService.Trainer.Host;

/// <summary>
/// <c>trainer host --api URL --token-file FILE [--slots N] [--name NAME] [--state-dir DIR] [--trainer-command "CMD"]</c>:
/// registers this machine's slots with the API, heartbeats, runs the trainer for each run leased to it.
/// Runs until SIGINT/SIGTERM, then stops its trainers. The host key comes from a file or LONGSEQ_HOST_KEY,
/// never the command line (anyone can read a command line in ps). Environment fallbacks: LONGSEQ_API_URL,
/// LONGSEQ_HOST_KEY_FILE, LONGSEQ_HOST_KEY, LONGSEQ_TRAINER_SLOTS, LONGSEQ_HOST_NAME, LONGSEQ_HOST_STATE_DIR,
/// LONGSEQ_TRAINER_COMMAND.
/// </summary>
public static class HostCommand
{
    public const string Usage = """
        usage: trainer host --api URL --token-file FILE [--slots N] [--slot-memory BYTES] [--name NAME] [--state-dir DIR] [--artifacts shared|remote] [--cache-max SIZE] [--mpi-host NAME] [--trainer-command "CMD ARGS"]
          --api              the LongSeqService API, e.g. http://127.0.0.1:5080      (LONGSEQ_API_URL)
          --token-file       a file holding the host key (POST /v1/keys {"tenant":…, "role":"host"}; one key per host)
                                                                                       (LONGSEQ_HOST_KEY_FILE, or the key itself in LONGSEQ_HOST_KEY)
          --slots            CPU slots this host offers (default 4)                    (LONGSEQ_TRAINER_SLOTS)
          --slot-memory      memory budget of each CPU slot, e.g. 6G (placement and
                             sequence_parallel_size: auto use it; default: unknown)  (LONGSEQ_SLOT_MEMORY)
          --name             host name (default: the machine name); the same name is the same host (LONGSEQ_HOST_NAME)
          --state-dir        the host's spool and lease (default: $LONGSEQ_DATA_DIR/host-state/NAME) (LONGSEQ_HOST_STATE_DIR)
          --artifacts        shared: this machine mounts the API's data directory at the same path (default);
                             remote: it has its own disk: inputs are downloaded into STATE-DIR/cache by
                             content hash, checkpoints and the model uploaded to the API (LONGSEQ_HOST_ARTIFACTS)
          --cache-max        remote: the most that cache keeps, e.g. 200G; the inputs used least recently go
                             first (default: no limit)                               (LONGSEQ_HOST_CACHE_MAX)
          --mpi-host         the name other hosts' MPI launcher (ssh) reaches this host by: the host may then hold part
                             of a job's world that spans hosts (default: it does not)  (LONGSEQ_MPI_HOST)
          --trainer-command  how to launch the trainer CLI (default: this executable)  (LONGSEQ_TRAINER_COMMAND)
        """;

    /// <summary>Entry point for Program.cs: <c>if (args[0] == "host") return await HostCommand.RunAsync(args[1..]);</c></summary>
    public static async Task<int> RunAsync(string[] args)
    {
        HostOptions options;
        try { options = Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"trainer host: {e.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        using var stop = new CancellationTokenSource();
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        await using var agent = new HostAgent(options, Console.Out);
        try { await agent.RunAsync(stop.Token); }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        catch (HttpRequestException e) when (e.StatusCode == System.Net.HttpStatusCode.Forbidden)
        {
            Console.Error.WriteLine($"trainer host: the API refused this host key for host '{options.Name}': {e.Message}");
            return 1;
        }
        return 0;
    }

    public static HostOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length) throw new ArgumentException($"expected --option value, got '{args[i]}'");
            values[args[i][2..]] = args[++i];
        }
        string? Get(string key, string env) => values.Remove(key, out var v) ? v : Environment.GetEnvironmentVariable(env) is { Length: > 0 } e ? e : null;
        if (values.ContainsKey("token"))
            throw new ArgumentException("--token is not accepted (a command line is visible to every user in ps): put the key in a file and pass --token-file FILE, or set LONGSEQ_HOST_KEY");
        var api = Get("api", "LONGSEQ_API_URL") ?? throw new ArgumentException("--api is required");
        var token = ReadToken(Get("token-file", "LONGSEQ_HOST_KEY_FILE"));
        var slotsText = Get("slots", "LONGSEQ_TRAINER_SLOTS") ?? "4";
        if (!int.TryParse(slotsText, out var slots) || slots < 1) throw new ArgumentException($"--slots must be a positive whole number, got '{slotsText}'");
        if (!Uri.TryCreate(api, UriKind.Absolute, out var apiUri)) throw new ArgumentException($"--api must be an absolute URL, got '{api}'");
        var command = Get("trainer-command", "LONGSEQ_TRAINER_COMMAND");
        long? Bytes(string key, string env)
        {
            if (Get(key, env) is not { } text) return null;
            try { return Cli.MaxLengthSearch.ParseBytes(text, key); }
            catch (Cli.CliException e) { throw new ArgumentException(e.Message); }
        }
        var slotMemory = Bytes("slot-memory", "LONGSEQ_SLOT_MEMORY");
        var cacheMax = Bytes("cache-max", "LONGSEQ_HOST_CACHE_MAX");
        var name = Get("name", "LONGSEQ_HOST_NAME") ?? Environment.MachineName;
        var stateDir = Get("state-dir", "LONGSEQ_HOST_STATE_DIR")
                       ?? Path.Combine(Environment.GetEnvironmentVariable("LONGSEQ_DATA_DIR") is { Length: > 0 } d ? d : ".data", "host-state", name);
        var artifacts = Get("artifacts", "LONGSEQ_HOST_ARTIFACTS") ?? Shared.Hosts.ArtifactAccess.Shared;
        if (!Shared.Hosts.ArtifactAccess.All.Contains(artifacts))
            throw new ArgumentException($"--artifacts must be one of {string.Join(", ", Shared.Hosts.ArtifactAccess.All)}, got '{artifacts}'");
        var mpiHost = Get("mpi-host", "LONGSEQ_MPI_HOST");
        if (mpiHost != null && (Shared.Jobs.MpiHosts.Parse($"{mpiHost}:1", out _).Count != 1))
            throw new ArgumentException($"--mpi-host must be a host name or address (letters, digits, '.', '_', '-'), got '{mpiHost}'");
        var options = new HostOptions
        {
            Artifacts = artifacts, MpiHost = mpiHost, CacheMaxBytes = cacheMax,
            Api = apiUri, Token = token, Slots = slots, SlotMemoryBytes = slotMemory, Name = name, StateDir = Path.GetFullPath(stateDir),
            TrainerCommand = command != null ? command.Split(' ', StringSplitOptions.RemoveEmptyEntries) : HostOptions.SelfCommand(),
        };
        if (values.Count > 0) throw new ArgumentException($"unknown option --{values.Keys.First()}");
        return options;
    }

    private static string ReadToken(string? file)
    {
        if (file == null)
            return Environment.GetEnvironmentVariable("LONGSEQ_HOST_KEY") is { Length: > 0 } key ? key
                : throw new ArgumentException("a host key is required: --token-file FILE (or LONGSEQ_HOST_KEY_FILE, or the key in LONGSEQ_HOST_KEY)");
        if (!File.Exists(file)) throw new ArgumentException($"--token-file: no file '{file}'");
        var text = File.ReadAllText(file).Trim();
        return text.Length > 0 ? text : throw new ArgumentException($"--token-file: '{file}' is empty");
    }
}
