namespace LongSeqService.Trainer.Training;

/// <summary>
/// A fencing token on the run's directory, for hosts that share a filesystem: the host that starts attempt K
/// of a run writes K into the run's fence file before its trainer starts, and that trainer checks the file
/// before every write into the output directory (a log line, a checkpoint, the final model). A trainer whose
/// attempt was superseded — its host cut off from the API while the API, rightly, placed the run elsewhere —
/// stops at its next write instead of writing beside the new attempt. The API's own fence (409 on every
/// report of a stale attempt) keeps its reports out; this keeps its files out.
/// </summary>
public sealed class RunFence(string file, int attempt)
{
    public const string FileVariable = "LONGSEQ_FENCE_FILE", AttemptVariable = "LONGSEQ_FENCE_ATTEMPT";
    /// <summary>The trainer's exit code when it stopped because its attempt was superseded.</summary>
    public const int ExitCode = 76;

    /// <summary>The fence this trainer process runs under (set by the host), or null (a CLI run, a test).</summary>
    public static RunFence? Current { get; } =
        Environment.GetEnvironmentVariable(FileVariable) is { Length: > 0 } f && int.TryParse(Environment.GetEnvironmentVariable(AttemptVariable), out var a)
            ? new RunFence(f, a) : null;

    /// <summary>The host's side: attempt <paramref name="attempt"/> holds the run from now on (written whole, then
    /// renamed). Attempts only move forward: a later attempt's claim is never overwritten by an earlier one.</summary>
    public static void Claim(string file, int attempt)
    {
        if (int.TryParse(File.Exists(file) ? File.ReadAllText(file).Trim() : "", out var holder) && holder > attempt)
            throw new SupersededException($"attempt {attempt} of this run was superseded by attempt {holder}");
        var tmp = file + ".tmp";
        File.WriteAllText(tmp, attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
        File.Move(tmp, file, overwrite: true);
    }

    /// <summary>Throws <see cref="SupersededException"/> unless the fence still names this trainer's attempt.</summary>
    public void Check()
    {
        string? holder;
        try { holder = File.ReadAllText(file).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { holder = null; }
        if (holder != attempt.ToString(System.Globalization.CultureInfo.InvariantCulture))
            throw new SupersededException($"attempt {attempt} of this run was superseded (the run's fence names attempt {holder ?? "none"}); this trainer stops without writing");
    }

    /// <summary>The superseded-attempt exception behind <paramref name="e"/> (rank threads and processes wrap what they throw), or null.</summary>
    public static SupersededException? Cause(Exception? e) => e switch
    {
        null => null,
        SupersededException s => s,
        AggregateException a => a.InnerExceptions.Select(Cause).FirstOrDefault(x => x != null),
        _ => Cause(e.InnerException),
    };

    /// <summary>Checks the current fence, if any: call it before writing into the output directory.</summary>
    public static void BeforeWrite() => Current?.Check();
}

public sealed class SupersededException(string message) : Exception(message);
