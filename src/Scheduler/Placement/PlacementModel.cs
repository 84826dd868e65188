namespace LongSeqService.Scheduler.Placement;

/// <summary>A host as placement sees it: its free slot indexes at the moment of the snapshot, and the memory
/// of its smallest slot (null when its slots don't report memory).</summary>
public sealed record HostSnapshot(int HostId, IReadOnlyList<int> FreeSlots, int TotalSlots, long? SlotMemoryBytes = null)
{
    /// <summary>It registered the name other hosts' MPI launcher reaches it by: it may hold part of a world that spans hosts.</summary>
    public bool JoinsSpans { get; init; }
}

/// <summary>A queued job: a gang of sequence_parallel_size × data_parallel_size ranks, one slot each, each rank
/// predicted to peak at <see cref="RankMemoryBytes"/> (null when unknown).</summary>
public sealed record PendingJob(Guid JobId, int SequenceParallelSize, int DataParallelSize, int Priority, DateTime CreatedAt, long? RankMemoryBytes = null)
{
    public int WorldSize => SequenceParallelSize * DataParallelSize;
}

/// <summary>A decision: these slots of this host for this job. Bound all-or-nothing. A job that spans hosts
/// (<see cref="PlacementSteps.Span"/>) has further hosts in <see cref="More"/>: its world's ranks fill
/// <see cref="HostId"/>'s slots first (rank 0 there: that host launches mpiexec), then each further host's in turn.</summary>
public sealed record Binding(Guid JobId, int HostId, IReadOnlyList<int> SlotIndexes)
{
    public IReadOnlyList<HostPart> More { get; init; } = [];

    /// <summary>Every host's part, in rank order.</summary>
    public IEnumerable<HostPart> Parts => [new HostPart(HostId, SlotIndexes), .. More];
}

/// <summary>One host's slots in a binding.</summary>
public sealed record HostPart(int HostId, IReadOnlyList<int> SlotIndexes);
