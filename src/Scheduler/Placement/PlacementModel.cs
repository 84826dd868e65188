namespace LongSeqService.Scheduler.Placement;

/// <summary>A host as placement sees it: its free slot indexes at the moment of the snapshot.</summary>
public sealed record HostSnapshot(int HostId, IReadOnlyList<int> FreeSlots, int TotalSlots);

/// <summary>A queued job: a gang of sequence_parallel_size × data_parallel_size ranks, one slot each.</summary>
public sealed record PendingJob(Guid JobId, int SequenceParallelSize, int DataParallelSize, int Priority, DateTime CreatedAt)
{
    public int WorldSize => SequenceParallelSize * DataParallelSize;
}

/// <summary>A decision: these slots of this host for this job. Bound all-or-nothing.</summary>
public sealed record Binding(Guid JobId, int HostId, IReadOnlyList<int> SlotIndexes);
