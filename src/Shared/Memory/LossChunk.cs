namespace LongSeqService.Shared.Memory;

/// <summary>
/// How many tokens the fused LM head + loss computes at once. The trainer never holds the whole
/// (T, V) logits: it runs hidden → logits → log-softmax → loss over chunks of this many tokens (and
/// recomputes each chunk in backward). The rule lives here, not in the trainer, so the memory
/// estimator and the trainer agree on it.
/// </summary>
public static class LossChunk
{
    /// <summary>Bytes of float32 logits one chunk may hold (its working set is a small multiple of this).</summary>
    public const long DefaultBudgetBytes = 128L << 20;

    /// <summary>Chunks never get smaller than this, whatever the vocabulary (matmuls stay efficient).</summary>
    public const int MinTokens = 16;

    /// <summary>Tokens per chunk: as many as fit <paramref name="budgetBytes"/> of float32 logits
    /// (softmax statistics are always float32), a multiple of 8, at least <see cref="MinTokens"/>.</summary>
    public static int Tokens(long vocabSize, long budgetBytes = DefaultBudgetBytes)
    {
        if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "vocabulary size must be positive");
        if (budgetBytes <= 0) throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, "the chunk budget must be positive");
        long tokens = budgetBytes / (vocabSize * sizeof(float));
        tokens = tokens / 8 * 8;
        return (int)Math.Clamp(tokens, MinTokens, int.MaxValue);
    }
}
