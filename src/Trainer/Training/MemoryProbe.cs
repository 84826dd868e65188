namespace LongSeqService.Trainer.Training;

/// <summary>
/// Opt-in: with <c>LONGSEQ_MEMORY_PROBE=DIR</c> every process appends, at each moment of a step that the memory
/// model names (loss backward, each checkpointed unit's backward, backward end, the optimizer step), its
/// resident bytes now and the peak since the previous mark to <c>DIR/memory-probe-PID.tsv</c> — so where a
/// rank peaks, and what is alive then, is measured, not guessed (docs/benchmarks.md, "memory model").
/// Off by default: the variable is read once and each mark is then one branch.
/// </summary>
public static class MemoryProbe
{
    public const string Variable = "LONGSEQ_MEMORY_PROBE";

    private static readonly string? Dir = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } d ? d : null;
    private static readonly Lock Gate = new();
    private static StreamWriter? _out;
    private static string _previous = "start";
    private static long _peak;

    /// <summary>The highest interval peak seen since <see cref="Reset"/> (marks restart VmHWM, so the process's own
    /// VmHWM alone would only cover the last interval).</summary>
    internal static long Peak => _peak;

    internal static void Reset() { lock (Gate) _peak = 0; }

    public static void Mark(string moment)
    {
        if (Dir is null) return;
        lock (Gate)
        {
            long peak = NativeMemory.KernelPeakBytes(), now = NativeMemory.ResidentBytes();
            NativeMemory.ResetPeakOnly();
            _peak = Math.Max(_peak, peak);
            _out ??= new StreamWriter(Path.Combine(Directory.CreateDirectory(Dir).FullName, $"memory-probe-{Environment.ProcessId}.tsv"), append: true);
            _out.WriteLine($"{_previous} → {moment}\t{peak / 1048576.0:F1}\t{now / 1048576.0:F1}");
            _out.Flush();
            _previous = moment;
        }
    }
}
