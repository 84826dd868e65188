namespace LongSeqService.Api.Infrastructure;

/// <summary>Service settings: configuration section "LongSeq", or the LONGSEQ_* environment variables
/// that scripts/run.sh documents (the environment wins).</summary>
public sealed class LongSeqOptions
{
    /// <summary>The artifact store: datasets/ (by content hash) and jobs/&lt;id&gt;/ (runs, outputs).</summary>
    public string DataDir { get; set; } = ".data";
    public long MaxUploadBytes { get; set; } = 256L << 20;
    /// <summary>The first admin key (LONGSEQ_BOOTSTRAP_API_KEY), stored hashed at start-up.</summary>
    public string? BootstrapApiKey { get; set; }
    /// <summary>A trainer-host key to seed at start-up (LONGSEQ_BOOTSTRAP_HOST_KEY; run.sh sets it).</summary>
    public string? BootstrapHostKey { get; set; }

    public string DataPath(params string[] parts) => Path.GetFullPath(Path.Combine([DataDir, .. parts]));

    public static void FromEnvironment(LongSeqOptions o)
    {
        string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        o.DataDir = Env("LONGSEQ_DATA_DIR") ?? o.DataDir;
        o.BootstrapApiKey = Env("LONGSEQ_BOOTSTRAP_API_KEY") ?? o.BootstrapApiKey;
        o.BootstrapHostKey = Env("LONGSEQ_BOOTSTRAP_HOST_KEY") ?? o.BootstrapHostKey;
        if (Env("LONGSEQ_MAX_UPLOAD_MB") is { } mb && long.TryParse(mb, out var m)) o.MaxUploadBytes = m << 20;
        o.DataDir = Path.GetFullPath(o.DataDir);
    }
}
