using LongSeqService.Shared.Wire;

namespace LongSeqService.Shared.Hosts;

/// <summary>A trainer host's liveness, as the API sees it.</summary>
public static class HostStates
{
    public const string Online = "online";
    /// <summary>Missed its heartbeats: holds no slots, runs nothing, until it heartbeats or registers again.</summary>
    public const string Lost = "lost";

    public static readonly string[] All = [Online, Lost];
}

/// <summary>How a host reaches the artifact store (datasets, models, job outputs).</summary>
public static class ArtifactAccess
{
    /// <summary>The host mounts the API's data directory (LONGSEQ_DATA_DIR) at the same path: it reads inputs and writes outputs there.</summary>
    public const string Shared = "shared";
    /// <summary>The host has its own disk: it downloads a run's inputs by content hash into a local cache and uploads
    /// its checkpoints and final artifacts to the API (…/runs/{job_id}/inputs, …/outputs).</summary>
    public const string Remote = "remote";

    public static readonly string[] All = [Shared, Remote];
}

/// <summary>One slot of a trainer host: a GPU (device "cuda:0", its memory) or a CPU slot ("cpu").</summary>
/// <param name="Device">The device: cpu, or cuda:&lt;index&gt;.</param>
/// <param name="MemoryBytes">The slot's memory in bytes, when the host knows it (placement then checks that a rank fits).</param>
public sealed record SlotSpec(string Device, long? MemoryBytes);

/// <summary>Sent by a trainer host when it starts. Registering again under the same name (with the same
/// host key) is the same host coming back: whatever it was running is gone, so its runs are requeued.</summary>
/// <param name="Name">The host's name (1 to 200 characters); bound to the host key that first registers it.</param>
/// <param name="Slots">Its slots, 1 to 1024.</param>
/// <param name="Artifacts">How it reaches the artifact store: shared (the default: it mounts the API's data directory) or remote (it downloads inputs and uploads outputs over HTTP).</param>
/// <param name="MpiHost">The name (or address) the other hosts' MPI launcher reaches this host by (ssh, or LONGSEQ_MPI_LAUNCHER_EXEC): set it and the
/// host may hold part of a job's world that spans hosts, started by another host's mpiexec; omit it and it runs only worlds of its own.</param>
public sealed record RegisterHostRequest(string Name, IReadOnlyList<SlotSpec> Slots, [property: ClosedSet(typeof(ArtifactAccess))] string? Artifacts = null,
    string? MpiHost = null);

/// <summary>The host's id, how often to heartbeat, and how long its trainers may run without hearing from
/// the host process (the local lease; shorter than the API's host timeout, so a frozen host's trainers are
/// gone before its runs are placed elsewhere). No database credential: runs are leased over HTTP.</summary>
/// <param name="HostId">The host's id, for the heartbeat and run URLs.</param>
/// <param name="HeartbeatSeconds">Seconds between heartbeats.</param>
/// <param name="LeaseSeconds">Seconds a trainer may run without hearing from its host process.</param>
public sealed record RegisterHostResponse(int HostId, int HeartbeatSeconds, int LeaseSeconds);

/// <summary>The runs a host is executing right now (job id and attempt).</summary>
/// <param name="Running">Every run the host is executing.</param>
public sealed record HeartbeatRequest(IReadOnlyList<RunningRun> Running);

/// <summary>A run: a job and the attempt being executed.</summary>
/// <param name="JobId">The job.</param>
/// <param name="Attempt">The attempt (the fencing token every report carries).</param>
public sealed record RunningRun(Guid JobId, int Attempt);

/// <summary>What the host must do, in this order: when <paramref name="Lost"/>, stop every trainer (the
/// API declared the host lost and requeued its runs); stop the runs in <paramref name="Stop"/> (cancelled,
/// or no longer this attempt); start the runs in <paramref name="Start"/> (placed here: the lease); ask the runs in
/// <paramref name="Pause"/> to checkpoint and stop (a tenant paused them).</summary>
/// <param name="Stop">Jobs whose trainers the host must stop.</param>
/// <param name="Start">Runs placed on this host that it has not started: start each (POST …/runs/{job_id}/start).</param>
/// <param name="Lost">True when the API had declared the host lost: stop every trainer first.</param>
/// <param name="Pause">Jobs a tenant paused: the host asks each trainer to checkpoint and stop (<see cref="Runs.PauseProtocol"/>).</param>
/// <param name="Joined">Runs whose world spans hosts and holds slots of this host while another host launches it (its mpiexec starts
/// the ranks here): the host starts nothing for them and keeps those slots busy until the run leaves this list.</param>
public sealed record HeartbeatResponse(IReadOnlyList<Guid> Stop, IReadOnlyList<RunningRun> Start, bool Lost = false, IReadOnlyList<Guid>? Pause = null,
    IReadOnlyList<RunningRun>? Joined = null);

/// <summary>A slot of a host and what holds it.</summary>
/// <param name="Index">The slot's index on its host, from 0.</param>
/// <param name="Device">The device: cpu, or cuda:&lt;index&gt;.</param>
/// <param name="MemoryBytes">The slot's memory in bytes, when the host reported it.</param>
/// <param name="JobId">The job holding the slot, when it is the caller's own (other tenants' jobs show as null, as do free slots).</param>
public sealed record SlotDto(int Index, string Device, long? MemoryBytes, Guid? JobId);

/// <summary>A trainer host, its slots and what holds them.</summary>
/// <param name="Id">The host's id.</param>
/// <param name="Name">The name it registered under.</param>
/// <param name="State">Whether it heartbeats.</param>
/// <param name="RegisteredAt">When it last registered (a restart registers again).</param>
/// <param name="LastHeartbeatAt">When it last heartbeated.</param>
/// <param name="TotalSlots">Its slot count.</param>
/// <param name="FreeSlots">Slots no job holds.</param>
/// <param name="Slots">Every slot, by index.</param>
/// <param name="HeldFromSpansUntil">While set and in the future: a world across hosts lost this host or could not reach it, so
/// placement puts it in no spanning world until then (it still runs jobs of its own) or until it registers again.</param>
/// <param name="HeldReason">Why it is held: the job, the attempt and what its launcher said.</param>
public sealed record HostDto(int Id, string Name, [property: ClosedSet(typeof(HostStates))] string State, DateTimeOffset RegisteredAt,
    DateTimeOffset LastHeartbeatAt, int TotalSlots, int FreeSlots, IReadOnlyList<SlotDto> Slots,
    DateTimeOffset? HeldFromSpansUntil = null, string? HeldReason = null);
