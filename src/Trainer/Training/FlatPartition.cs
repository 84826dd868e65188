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
    {
        Parameters = parameters;
        _starts = new long[parameters.Count];
        for (int i = 1; i < parameters.Count; i++) _starts[i] = _starts[i - 1] + parameters[i - 1].Param.numel();
        Total = parameters.Count == 0 ? 0 : _starts[^1] + parameters[^1].Param.numel();
        Counts = [.. Enumerable.Range(0, worldSize).Select(r => Total / worldSize + (r < Total % worldSize ? 1 : 0))];
        Start = Counts.Take(rank).Sum();
        End = Start + Counts[rank];
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
            long start = _starts[i], end = start + Parameters[i].Param.numel();
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
