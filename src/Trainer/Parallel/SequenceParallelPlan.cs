using LongSeqService.Shared.Jobs;
using TorchSharp;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// How one SP group splits a sequence and computes attention: the mode, the group size N, the head
/// counts, and (hybrid) the Ulysses degree u. <see cref="Create"/> validates with messages that say
/// what would work. The plan is the single source of truth for "rank r's tokens" (<see cref="TokenIndices"/>):
/// the collator shards input_ids/labels/position_ids with <see cref="Shard"/>, and the attention from
/// <see cref="CreateAttention"/> assumes exactly that layout:
/// zigzag-ring — chunks r and 2N−1−r of 2N; ring and ulysses — chunk r of N; hybrid — see
/// <see cref="HybridAttention"/> (u = N gives the ulysses layout, u = 1 the zigzag one).
/// </summary>
public sealed class SequenceParallelPlan
{
    private SequenceParallelPlan(SequenceParallelMode mode, int size, int numHeads, int numKeyValueHeads, int ulyssesDegree)
    {
        (Mode, Size, NumHeads, NumKeyValueHeads, UlyssesDegree) = (mode, size, numHeads, numKeyValueHeads, ulyssesDegree);
    }

    public SequenceParallelMode Mode { get; }

    /// <summary>sequence_parallel_size: ranks in the SP group.</summary>
    public int Size { get; }

    public int NumHeads { get; }

    public int NumKeyValueHeads { get; }

    /// <summary>Ranks per Ulysses all-to-all: 1 for the ring modes, N for ulysses, u for hybrid.</summary>
    public int UlyssesDegree { get; }

    /// <summary>Ranks per ring: N / UlyssesDegree.</summary>
    public int RingSize => Size / UlyssesDegree;

    /// <summary>The collator pads every sequence to a multiple of this (2N for the zigzag layouts, N otherwise).</summary>
    public int SequenceMultiple => Mode is SequenceParallelMode.ZigzagRing or SequenceParallelMode.Hybrid ? 2 * Size : Size;

    public string ModeName => Name(Mode);

    /// <summary>Validates and builds a plan; throws <see cref="ArgumentException"/> saying what would work.</summary>
    public static SequenceParallelPlan Create(SequenceParallelMode mode, int size, int numHeads, int numKeyValueHeads, int? ulyssesDegree = null)
    {
        var error = Validate(mode, size, numHeads, numKeyValueHeads, ulyssesDegree, out var degree);
        if (error is not null) throw new ArgumentException(error);
        return new SequenceParallelPlan(mode, size, numHeads, numKeyValueHeads, degree);
    }

    public static SequenceParallelPlan Create(string mode, int size, int numHeads, int numKeyValueHeads, int? ulyssesDegree = null) =>
        Create(ParseMode(mode), size, numHeads, numKeyValueHeads, ulyssesDegree);

    /// <summary>The problem with these settings in the job spec's words, or null when they work
    /// (the rules live in <see cref="SequenceParallelRules"/>, shared with the API's validation).</summary>
    public static string? Validate(SequenceParallelMode mode, int size, int numHeads, int numKeyValueHeads, int? ulyssesDegree, out int degree)
    {
        degree = mode switch
        {
            SequenceParallelMode.Ulysses => size,
            SequenceParallelMode.Hybrid when size >= 1 && numHeads >= 1 => ulyssesDegree ?? AutoUlyssesDegree(size, numHeads),
            _ => 1,
        };
        return SequenceParallelRules.Check(mode, size, numHeads, numKeyValueHeads, ulyssesDegree);
    }

    /// <summary>Hybrid's default: the largest divisor of N that divides the query heads (K/V heads are repeated as needed).</summary>
    public static int AutoUlyssesDegree(int size, int numHeads) => SequenceParallelRules.AutoUlyssesDegree(size, numHeads);

    public static SequenceParallelMode ParseMode(string mode) => mode.Trim().ToLowerInvariant() switch
    {
        "zigzag-ring" or "zigzag_ring" or "zigzag" => SequenceParallelMode.ZigzagRing,
        "ring" => SequenceParallelMode.Ring,
        "ulysses" => SequenceParallelMode.Ulysses,
        "hybrid" => SequenceParallelMode.Hybrid,
        _ => throw new ArgumentException($"sequence_parallel_mode '{mode}' is not one of 'zigzag-ring', 'ring', 'ulysses', 'hybrid'"),
    };

    public static string Name(SequenceParallelMode mode) => mode switch
    {
        SequenceParallelMode.ZigzagRing => "zigzag-ring",
        SequenceParallelMode.Ring => "ring",
        SequenceParallelMode.Ulysses => "ulysses",
        _ => "hybrid",
    };

    /// <summary>Throws unless the (padded) sequence length divides as this plan needs.</summary>
    public void CheckSequenceLength(long seqLen)
    {
        if (seqLen <= 0 || seqLen % SequenceMultiple != 0)
            throw new ArgumentException(
                $"sequence_parallel_mode '{ModeName}' with sequence_parallel_size {Size} needs the sequence length ({seqLen}) padded to a multiple of {SequenceMultiple}");
    }

    /// <summary>Global positions of the tokens rank <paramref name="rank"/> holds, in its local order (its position_ids).</summary>
    public long[] TokenIndices(int rank, long seqLen)
    {
        if (rank < 0 || rank >= Size) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"the SP group has {Size} ranks");
        CheckSequenceLength(seqLen);
        switch (Mode)
        {
            case SequenceParallelMode.ZigzagRing:
                return ZigzagSplit.Indices(rank, Size, seqLen);
            case SequenceParallelMode.Ring or SequenceParallelMode.Ulysses:
                return ZigzagSplit.ContiguousIndices(rank, Size, seqLen);
            default:
                var (u, ring, member) = (UlyssesDegree, rank / UlyssesDegree, rank % UlyssesDegree);
                var ringShard = ZigzagSplit.Indices(ring, RingSize, seqLen); // this Ulysses group's tokens
                var piece = ringShard.Length / u;
                return ringShard.Skip(member * piece).Take(piece).ToArray();
        }
    }

    /// <summary>Rank <paramref name="rank"/>'s shard of a full-sequence tensor along <paramref name="dim"/>.</summary>
    public Tensor Shard(Tensor full, int rank, long dim = 1)
    {
        using var index = torch.tensor(TokenIndices(rank, full.shape[dim]), device: full.device);
        return full.index_select(dim, index);
    }

    /// <summary>The full sequence back from every rank's shard (index = rank). For tests and gathered outputs.</summary>
    public Tensor Unshard(IReadOnlyList<Tensor> shards, long dim = 1)
    {
        if (shards.Count != Size) throw new ArgumentException($"expected {Size} shards, got {shards.Count}");
        using var scope = torch.NewDisposeScope();
        var seqLen = shards.Sum(s => s.shape[dim]);
        var positions = Enumerable.Range(0, Size).SelectMany(r => TokenIndices(r, seqLen)).ToArray();
        var inverse = new long[seqLen]; // concatenated index of the token at each global position
        for (var i = 0; i < positions.Length; i++) inverse[positions[i]] = i;
        var all = torch.cat(shards.ToArray(), dim);
        return scope.MoveToOuter(all.index_select(dim, torch.tensor(inverse, device: all.device)));
    }

    /// <summary>
    /// This rank's attention for the layout above; <paramref name="group"/> is the SP group (its rank is
    /// the rank in <see cref="TokenIndices"/>). Create one per rank and share it across layers.
    /// </summary>
    public IAttention CreateAttention(ICollectives group, IAttentionKernel? kernel = null, AttentionTimer? timer = null)
    {
        if (group.WorldSize != Size)
            throw new ArgumentException($"the plan is for {Size} ranks but the group has {group.WorldSize}");
        timer ??= new AttentionTimer(); // one timer for every part (all-to-all, inner attention)
        return Mode switch
        {
            SequenceParallelMode.ZigzagRing => new RingAttention(group, RingLayout.Zigzag, kernel, timer),
            SequenceParallelMode.Ring => new RingAttention(group, RingLayout.Contiguous, kernel, timer),
            SequenceParallelMode.Ulysses => new UlyssesAttention(group, new LocalAttention(kernel, timer), timer),
            _ => new HybridAttention(group, UlyssesDegree, kernel, timer),
        };
    }
}
