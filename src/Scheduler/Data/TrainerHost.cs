using LongSeqService.Shared.Hosts;

namespace LongSeqService.Scheduler.Data;

/// <summary>A trainer host: a machine with slots that runs the runs placed on it.</summary>
public sealed class TrainerHost
{
    public int Id { get; set; }
    public required string Name { get; set; }
    public required string State { get; set; }
    public DateTime RegisteredAt { get; set; }
    public DateTime LastHeartbeatAt { get; set; }
    /// <summary>The host key this host is bound to (set at its first registration): only that key may
    /// register, heartbeat or report for this host id, and that key may be no other host.</summary>
    public Guid? KeyId { get; set; }
    /// <summary>How it reaches the artifact store (<see cref="ArtifactAccess"/>): shared (mounts the data directory) or remote (downloads inputs, uploads outputs).</summary>
    public string Artifacts { get; set; } = ArtifactAccess.Shared;
    /// <summary>The name other hosts' MPI launcher (ssh, or <c>LONGSEQ_MPI_LAUNCHER_EXEC</c>) reaches this host by, as it
    /// goes into <c>mpi_hosts</c>; null: the host does not join worlds that span hosts.</summary>
    public string? MpiHost { get; set; }
    /// <summary>Until then the host joins no world across hosts: one such world lost it or could not reach it (a host
    /// that died stays Online until its heartbeat times out; one up but unreachable over ssh would be placed again at once).
    /// Cleared when the host registers again.</summary>
    public DateTime? HeldUntil { get; set; }
    public string? HeldReason { get; set; }
    /// <summary>Holds since the host last registered: each one twice as long as the one before (<see cref="SchedulerOptions.LostHostHoldSeconds"/>).</summary>
    public int Holds { get; set; }
    public List<HostSlot> Slots { get; set; } = [];

    public HostDto ToDto(Func<Guid?, Guid?> showJob) => new(Id, Name, State, RegisteredAt, LastHeartbeatAt,
        Slots.Count, Slots.Count(s => s.JobId == null),
        Slots.OrderBy(s => s.Index).Select(s => new SlotDto(s.Index, s.Device, s.MemoryBytes, showJob(s.JobId))).ToList(),
        HeldUntil > DateTime.UtcNow ? HeldUntil : null, HeldUntil > DateTime.UtcNow ? HeldReason : null);
}

/// <summary>One slot of a host (a GPU, or a CPU slot). <see cref="JobId"/> is the reservation: binding
/// sets it only where it is null, so two placement passes cannot both take a slot.</summary>
public sealed class HostSlot
{
    public int HostId { get; set; }
    public int Index { get; set; }
    public required string Device { get; set; }
    public long? MemoryBytes { get; set; }
    public Guid? JobId { get; set; }
}
