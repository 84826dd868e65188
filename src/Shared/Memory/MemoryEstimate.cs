namespace LongSeqService.Shared.Memory;

/// <summary>One term of a rank's memory, in bytes, with how it was counted.</summary>
public sealed record MemoryTerm(string Name, long Bytes, string Detail);

/// <summary>A moment of the step and what is alive then; the rank's peak is the resident terms plus the largest moment.</summary>
public sealed record MemoryMoment(string Name, IReadOnlyList<MemoryTerm> Terms)
{
    public long Bytes => Terms.Sum(t => t.Bytes);
}

/// <summary>A rank's predicted memory: what is always held, the moments of a step, and the peak.</summary>
public sealed record MemoryEstimate(IReadOnlyList<MemoryTerm> Resident, IReadOnlyList<MemoryMoment> Moments, long LocalTokens)
{
    public long ResidentBytes => Resident.Sum(t => t.Bytes);
    public MemoryMoment PeakMoment => Moments.MaxBy(m => m.Bytes)!;
    public long PeakBytes => ResidentBytes + PeakMoment.Bytes;

    /// <summary>"1.5 GiB", "340.2 MiB": for messages.</summary>
    public static string Format(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.##} GiB" : $"{bytes / (double)(1L << 20):0.#} MiB";
}
