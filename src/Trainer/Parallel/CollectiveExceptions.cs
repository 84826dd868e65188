namespace LongSeqService.Trainer.Parallel;

/// <summary>Thrown on a rank whose communication was cut short because another rank failed.</summary>
public sealed class CollectiveAbortedException(string message, Exception? cause)
    : Exception(message, cause);

/// <summary>Thrown by <see cref="InProcessWorld.Run"/>: the first rank that failed, and why.</summary>
public sealed class RankFailedException(int rank, Exception cause)
    : Exception($"rank {rank} failed: {(cause is RankProcessException p ? p.TypeName : cause.GetType().Name)}: {cause.Message}", cause)
{
    public int Rank { get; } = rank;
}

/// <summary>An error raised in another process (a rank launched as a process), known by its type name and message.</summary>
public sealed class RankProcessException(string typeName, string message) : Exception(message)
{
    public string TypeName { get; } = typeName;
}
