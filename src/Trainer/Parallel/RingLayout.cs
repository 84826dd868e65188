namespace LongSeqService.Trainer.Parallel;

/// <summary>Which tokens each rank of a ring holds.</summary>
public enum RingLayout
{
    /// <summary>The sequence is cut into 2N chunks; rank r holds chunks r and 2N−1−r. Equal causal work per rank.</summary>
    Zigzag,

    /// <summary>The sequence is cut into N chunks; rank r holds chunk r. Rank N−1 does N times rank 0's work.</summary>
    Contiguous,
}
