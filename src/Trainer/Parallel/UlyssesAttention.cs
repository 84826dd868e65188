using TorchSharp;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// DeepSpeed-Ulysses: an all-to-all turns the sequence-sharded q/k/v (B, H, T/N, D) into head-sharded
/// (B, H/N, T, D), <see cref="Inner"/> attends over the whole sequence, and an all-to-all turns the
/// output back. The gathered sequence is the ranks' shards concatenated in rank order, so the token
/// layout must be contiguous (rank r holds the r-th 1/N of the sequence) for the inner attention to
/// see tokens in order; <see cref="SequenceParallelPlan"/> uses that layout for 'ulysses'.
/// Needs Hq divisible by N. K/V heads are repeated (grouped-query copies) up to lcm(Hkv, N) when N
/// does not divide Hkv; query head h still reads the same K/V head after the split.
/// </summary>
public sealed class UlyssesAttention : IAttention
{
    public UlyssesAttention(ICollectives group, IAttention? inner = null, AttentionTimer? timer = null)
    {
        Group = group;
        Timer = timer ?? new AttentionTimer();
        Inner = inner ?? new LocalAttention(timer: Timer);
    }

    public ICollectives Group { get; }

    public int SequenceShards => Group.WorldSize;

    /// <summary>All-to-all time; shared with the default inner attention, so it holds the total.</summary>
    public AttentionTimer Timer { get; }

    /// <summary>Attention over the gathered sequence: local by default, a ring in hybrid mode.</summary>
    public IAttention Inner { get; }

    /// <summary>q (B, Hq, Tl, D), k/v (B, Hkv, Tl, D) → (B, Hq, Tl, D).</summary>
    public Tensor Forward(Tensor q, Tensor k, Tensor v)
    {
        var n = Group.WorldSize;
        if (n == 1) return Inner.Forward(q, k, v);
        var (hq, hkv) = (q.shape[1], k.shape[1]);
        if (hq % n != 0)
            throw new ArgumentException($"Ulysses attention over {n} ranks needs the number of query heads ({hq}) divisible by {n}");
        GroupedQuery.Groups(q, k);
        using var scope = torch.NewDisposeScope();
        var repeat = Lcm(hkv, n) / hkv;
        if (repeat > 1) (k, v) = (GroupedQuery.Repeat(k, repeat), GroupedQuery.Repeat(v, repeat)); // (B, lcm(Hkv, N), Tl, D)
        var qh = AllToAllFunction.Apply(q, Group, 1, 2, Timer);   // (B, Hq/N, T, D)
        var kh = AllToAllFunction.Apply(k, Group, 1, 2, Timer);   // (B, Hkv'/N, T, D)
        var vh = AllToAllFunction.Apply(v, Group, 1, 2, Timer);
        // Packed sequences: the inner attention sees the gathered sequence, so it needs its document ids.
        var docs = PackedDocuments.Current is { } mine ? Group.AllGather(mine, 1) : null; // (B, T), rank order = token order
        Tensor oh;
        using (PackedDocuments.Use(docs)) oh = Inner.Forward(qh, kh, vh); // (B, Hq/N, T, D)
        return scope.MoveToOuter(AllToAllFunction.Apply(oh, Group, 2, 1, Timer)); // (B, Hq, Tl, D)
    }

    private static long Lcm(long a, long b) => a / Gcd(a, b) * b;

    private static long Gcd(long a, long b) => b == 0 ? a : Gcd(b, a % b);
}
