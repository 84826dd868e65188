using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// The trainable parameters as one flat space (named_parameters order, each tensor's elements in memory
/// order) cut into W contiguous partitions of balanced size (⌊N/W⌋ or one more; a cut may fall inside a
/// tensor). Rank r owns partition r: ZeRO keeps its optimizer state (and, from stage 2, its gradients).
/// </summary>
public sealed class FlatPartition
{
    private readonly long[] _starts;                 // flat position of each parameter's first element

    /// <summary>A run of one parameter's flat elements: parameter index, offset inside it, length, flat position.</summary>
    public readonly record struct Run(int Index, long Offset, long Length, long Flat);

    public FlatPartition(IReadOnlyList<(string Name, Tensor Param)> parameters, int worldSize, int rank)
        : this(parameters, [.. parameters.Select(p => p.Param.numel())], worldSize, rank)
    {
    }

    /// <param name="sizes">Each parameter's element count (read once: ZeRO stage 3 frees the tensors' storage).</param>
    public FlatPartition(IReadOnlyList<(string Name, Tensor Param)> parameters, long[] sizes, int worldSize, int rank)
        : this(parameters, sizes, rank, total => [.. Enumerable.Range(0, worldSize).Select(r => total / worldSize + (r < total % worldSize ? 1 : 0))])
    {
    }

    /// <summary>A partition with given per-rank counts (they sum to the parameters' elements): ZeRO stage 3 cuts the
    /// trainable space where the cuts of the whole parameter space fall.</summary>
    public FlatPartition(IReadOnlyList<(string Name, Tensor Param)> parameters, long[] sizes, long[] counts, int rank)
        : this(parameters, sizes, rank, _ => counts)
    {
        if (counts.Sum() != Total) throw new ArgumentException($"the counts sum to {counts.Sum()}, the parameters hold {Total} elements", nameof(counts));
    }

    private FlatPartition(IReadOnlyList<(string Name, Tensor Param)> parameters, long[] sizes, int rank, Func<long, long[]> counts)
    {
        Parameters = parameters;
        Sizes = sizes;
        _starts = new long[parameters.Count];
        for (int i = 1; i < parameters.Count; i++) _starts[i] = _starts[i - 1] + sizes[i - 1];
        Total = parameters.Count == 0 ? 0 : _starts[^1] + sizes[^1];
        Counts = counts(Total);
        Start = Counts.Take(rank).Sum();
        End = Start + Counts[rank];
    }

    /// <summary>Each parameter's element count.</summary>
    public long[] Sizes { get; }

    /// <summary>Flat position of parameter <paramref name="index"/>'s first element.</summary>
    public long StartOf(int index) => _starts[index];

    /// <summary>Rank <paramref name="rank"/>'s partition: flat elements [start, end).</summary>
    public (long Start, long End) RangeOf(int rank)
    {
        long start = Counts.Take(rank).Sum();
        return (start, start + Counts[rank]);
    }

    public IReadOnlyList<(string Name, Tensor Param)> Parameters { get; }

    /// <summary>Elements in the flat space (N).</summary>
    public long Total { get; }

    /// <summary>Elements of every rank's partition, in rank order (the counts of a reduce-scatter).</summary>
    public long[] Counts { get; }

    /// <summary>This rank's partition: flat elements [Start, End).</summary>
    public long Start { get; }
    public long End { get; }
    public long Length => End - Start;

    /// <summary>The parameter runs that make up flat elements [from, to), in order.</summary>
    public IEnumerable<Run> Runs(long from, long to)
    {
        for (int i = 0; i < Parameters.Count && from < to; i++)
        {
            long start = _starts[i], end = start + Sizes[i];
            if (end <= from) continue;
            if (start >= to) yield break;
            long a = Math.Max(from, start), b = Math.Min(to, end);
            if (b > a) yield return new Run(i, a - start, b - a, a);
        }
    }

    /// <summary>The counts of flat elements [from, to) that fall in each rank's partition.</summary>
    public long[] CountsIn(long from, long to)
    {
        var counts = new long[Counts.Length];
        long start = 0;
        for (int r = 0; r < Counts.Length; r++)
        {
            counts[r] = Math.Max(0, Math.Min(to, start + Counts[r]) - Math.Max(from, start));
            start += Counts[r];
        }
        return counts;
    }
}
