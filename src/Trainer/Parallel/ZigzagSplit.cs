using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Splitting a sequence across N ranks along its sequence dimension (dim 1 of (B, T, …) by default).
/// Zigzag: 2N chunks, rank r holds chunks r and 2N−1−r in that order (balanced causal work).
/// Contiguous: N chunks, rank r holds chunk r. Lengths must divide evenly; padding is the collator's job.
/// </summary>
public static class ZigzagSplit
{
    /// <summary>Throws with a message that says what the collator must pad to.</summary>
    public static void CheckLength(long seqLen, long multiple, string layout)
    {
        if (seqLen <= 0 || seqLen % multiple != 0)
            throw new ArgumentException(
                $"{layout} split: sequence length {seqLen} is not a positive multiple of {multiple}; pad the sequence (with ignored labels) to a multiple of {multiple}");
    }

    /// <summary>Global token positions held by <paramref name="rank"/>, in local order.</summary>
    public static long[] Indices(int rank, int worldSize, long seqLen)
    {
        CheckLength(seqLen, 2L * worldSize, "zigzag");
        var chunk = seqLen / (2L * worldSize);
        var first = Enumerable.Range(0, (int)chunk).Select(i => rank * chunk + i);
        var second = Enumerable.Range(0, (int)chunk).Select(i => (2L * worldSize - 1 - rank) * chunk + i);
        return first.Concat(second).ToArray();
    }

    public static long[] ContiguousIndices(int rank, int worldSize, long seqLen)
    {
        CheckLength(seqLen, worldSize, "contiguous");
        var chunk = seqLen / worldSize;
        return Enumerable.Range(0, (int)chunk).Select(i => rank * chunk + i).ToArray();
    }

    /// <summary>Rank <paramref name="rank"/>'s zigzag shard: chunks r and 2N−1−r of 2N, concatenated.</summary>
    public static Tensor Shard(Tensor x, int rank, int worldSize, long dim = 1)
    {
        CheckLength(x.shape[dim], 2L * worldSize, "zigzag");
        using var scope = torch.NewDisposeScope();
        var chunks = x.chunk(2 * worldSize, dim);
        return scope.MoveToOuter(torch.cat([chunks[rank], chunks[2 * worldSize - 1 - rank]], dim));
    }

    /// <summary>Inverse of <see cref="Shard"/>: the full sequence from every rank's shard (index = rank).</summary>
    public static Tensor Gather(IReadOnlyList<Tensor> shards, long dim = 1)
    {
        using var scope = torch.NewDisposeScope();
        var n = shards.Count;
        var chunks = new Tensor[2 * n];
        for (var r = 0; r < n; r++)
        {
            var halves = shards[r].chunk(2, dim);
            (chunks[r], chunks[2 * n - 1 - r]) = (halves[0], halves[1]);
        }
        return scope.MoveToOuter(torch.cat(chunks, dim));
    }

    public static Tensor ContiguousShard(Tensor x, int rank, int worldSize, long dim = 1)
    {
        CheckLength(x.shape[dim], worldSize, "contiguous");
        var chunk = x.shape[dim] / worldSize;
        return x.narrow(dim, rank * chunk, chunk).contiguous();
    }

    public static Tensor ContiguousGather(IReadOnlyList<Tensor> shards, long dim = 1) => torch.cat(shards.ToArray(), dim);
}
