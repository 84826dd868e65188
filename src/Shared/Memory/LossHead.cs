namespace LongSeqService.Shared.Memory;

/// <summary>How the trainer computes the LM head and the loss — the largest per-token term with a real vocabulary.</summary>
public enum LossHead
{
    /// <summary>The whole (T, V) logits at once: the logits, their float32 cast (bf16), the log-softmax and their
    /// gradients are all alive while the loss backpropagates.</summary>
    Full,

    /// <summary>Fused and chunked over <see cref="LossChunk.Tokens"/> tokens at a time, recomputed in backward:
    /// never more than one chunk's logits.</summary>
    Chunked,
}

/// <summary>
/// What the trainer in this build does: the fused, chunked head + loss (ChunkedLmLoss, hidden → logits →
/// loss per <see cref="LossChunk"/>); the estimator, the API's 422 and <c>sequence_parallel_size: auto</c>
/// all read it from here.
/// </summary>
public static class TrainerLossHead
{
    public const LossHead Current = LossHead.Chunked;
}
