using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>Grouped-query attention: each key/value head is shared by consecutive query heads (HF's repeat_kv order).</summary>
public static class GroupedQuery
{
    /// <summary>How many query heads share each key/value head.</summary>
    public static long Groups(Tensor q, Tensor k)
    {
        var (hq, hkv) = (q.shape[1], k.shape[1]);
        if (hkv <= 0 || hq % hkv != 0)
            throw new ArgumentException($"query heads ({hq}) must be a multiple of key/value heads ({hkv})");
        return hq / hkv;
    }

    /// <summary>(B, Hkv, T, D) → (B, Hkv·n, T, D), each head repeated n times in place: query head h uses kv head h / n.</summary>
    public static Tensor Repeat(Tensor kv, long n) =>
        n == 1 ? kv.alias() : kv.repeat_interleave(n, dim: 1);

    /// <summary>k and v repeated to the query's head count.</summary>
    public static (Tensor K, Tensor V) RepeatKv(Tensor q, Tensor k, Tensor v)
    {
        var n = Groups(q, k);
        return (Repeat(k, n), Repeat(v, n));                                                  // (B, Hq, T, D)
    }

    /// <summary>The adjoint of <see cref="Repeat"/>: (B, Hkv·n, T, D) → (B, Hkv, T, D), summing each group.</summary>
    public static Tensor SumGroups(Tensor grad, long n)
    {
        if (n == 1) return grad.alias();
        var (b, h, t, d) = (grad.shape[0], grad.shape[1], grad.shape[2], grad.shape[3]);
        return grad.reshape(b, h / n, n, t, d).sum(2);                                         // (B, Hkv, n, T, D) → (B, Hkv, T, D)
    }
}
