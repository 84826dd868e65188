namespace LongSeqService.Trainer.Parallel;

/// <summary>The job spec's <c>sequence_parallel_mode</c>.</summary>
public enum SequenceParallelMode
{
    /// <summary><c>zigzag-ring</c> (default): ring attention over the zigzag layout.</summary>
    ZigzagRing,

    /// <summary><c>ring</c>: ring attention over the contiguous layout (unbalanced; for comparison).</summary>
    Ring,

    /// <summary><c>ulysses</c>: all-to-all to head-sharded, local attention; contiguous layout.</summary>
    Ulysses,

    /// <summary><c>hybrid</c>: Ulysses within groups of <c>ulysses_degree</c> ranks × zigzag ring across them.</summary>
    Hybrid,
}
