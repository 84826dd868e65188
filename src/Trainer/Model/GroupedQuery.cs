using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>Grouped-query attention helpers shared by the attention implementations.</summary>
public static class GroupedQuery
{
    /// <summary>
    /// Repeats k and v (B, Hkv, T, D) to (B, Hq, T, D) the way HF's <c>repeat_kv</c> does: each kv
    /// head is repeated Hq/Hkv times in a row, so query head h uses kv head h / (Hq/Hkv).
    /// Returns the inputs themselves when Hq == Hkv.
    /// </summary>
    public static (Tensor K, Tensor V) RepeatKv(Tensor q, Tensor k, Tensor v)
    {
        var hq = q.shape[1];
        var hkv = k.shape[1];
        if (hkv == hq) return (k, v);
        if (hkv <= 0 || hq % hkv != 0)
            throw new ArgumentException($"Query heads ({hq}) must be a multiple of key/value heads ({hkv}).");
        var groups = hq / hkv;
        return (k.repeat_interleave(groups, dim: 1), v.repeat_interleave(groups, dim: 1)); // (B, Hq, T, D)
    }
}
