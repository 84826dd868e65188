namespace LongSeqService.Trainer.Parallel;

/// <summary>The partition a reduce-scatter hands out, checked the same way by every implementation.</summary>
internal static class ScatterCounts
{
    /// <summary>Where each rank's part starts in the flat tensor; throws unless there is one count per rank and they cover it exactly.</summary>
    public static long[] Offsets(IReadOnlyList<long> counts, int worldSize, long numel)
    {
        if (counts.Count != worldSize || counts.Any(c => c < 0))
            throw new ArgumentException($"reduce-scatter: {counts.Count} counts [{string.Join(", ", counts)}] for a group of {worldSize}; need one non-negative count per rank");
        var offsets = new long[worldSize];
        for (int r = 1; r < worldSize; r++) offsets[r] = offsets[r - 1] + counts[r - 1];
        if (offsets[^1] + counts[^1] != numel)
            throw new ArgumentException($"reduce-scatter: counts add up to {offsets[^1] + counts[^1]}, the tensor has {numel} elements");
        return offsets;
    }
}
