namespace LongSeqService.Shared.Hosts;

/// <summary>One slot of a trainer host: a GPU (device "cuda:0", its memory) or a CPU slot ("cpu").</summary>
public sealed record SlotSpec(string Device, long? MemoryBytes);

/// <summary>Sent by a trainer host when it starts. Registering again under the same name (with the same
/// host key) is the same host coming back: whatever it was running is gone, so its runs are requeued.</summary>
public sealed record RegisterHostRequest(string Name, IReadOnlyList<SlotSpec> Slots);

/// <summary>The host's id, how often to heartbeat, and how long its trainers may run without hearing from
/// the host process (the local lease; shorter than the API's host timeout, so a frozen host's trainers are
/// gone before its runs are placed elsewhere). No database credential: runs are leased over HTTP.</summary>
public sealed record RegisterHostResponse(int HostId, int HeartbeatSeconds, int LeaseSeconds);

/// <summary>The runs a host is executing right now (job id and attempt).</summary>
public sealed record HeartbeatRequest(IReadOnlyList<RunningRun> Running);
public sealed record RunningRun(Guid JobId, int Attempt);

/// <summary>What the host must do, in this order: when <paramref name="Lost"/>, stop every trainer (the
/// API declared the host lost and requeued its runs); stop the runs in <paramref name="Stop"/> (cancelled,
/// or no longer this attempt); start the runs in <paramref name="Start"/> (placed here: the lease); ask the runs in
/// <paramref name="Pause"/> to checkpoint and stop (a tenant paused them).</summary>
public sealed record HeartbeatResponse(IReadOnlyList<Guid> Stop, IReadOnlyList<RunningRun> Start, bool Lost = false, IReadOnlyList<Guid>? Pause = null);

public sealed record SlotDto(int Index, string Device, long? MemoryBytes, Guid? JobId);

public sealed record HostDto(int Id, string Name, string State, DateTimeOffset RegisteredAt,
    DateTimeOffset LastHeartbeatAt, int TotalSlots, int FreeSlots, IReadOnlyList<SlotDto> Slots);
