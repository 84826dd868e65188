namespace LongSeqService.Shared.Hosts;

/// <summary>One slot of a trainer host: a GPU (device "cuda:0", its memory) or a CPU slot ("cpu").</summary>
public sealed record SlotSpec(string Device, long? MemoryBytes);

/// <summary>Sent by a trainer host when it starts. Registering again under the same name is the same
/// host coming back: whatever it was running is gone, so its runs are requeued.</summary>
public sealed record RegisterHostRequest(string Name, IReadOnlyList<SlotSpec> Slots);

/// <summary>The host's id, the Hangfire queue it serves, and how often to heartbeat. The database
/// connection is included when the API is configured to share it, so a host needs only --api and --token.</summary>
public sealed record RegisterHostResponse(int HostId, string Queue, int HeartbeatSeconds, string? HangfireConnectionString);

/// <summary>The runs a host is executing right now (job id and attempt).</summary>
public sealed record HeartbeatRequest(IReadOnlyList<RunningRun> Running);
public sealed record RunningRun(Guid JobId, int Attempt);

/// <summary>Runs the host must stop: cancelled by a user, or no longer assigned to it.</summary>
public sealed record HeartbeatResponse(IReadOnlyList<Guid> Stop);

public sealed record SlotDto(int Index, string Device, long? MemoryBytes, Guid? JobId);

public sealed record HostDto(int Id, string Name, string State, string Queue, DateTimeOffset RegisteredAt,
    DateTimeOffset LastHeartbeatAt, int TotalSlots, int FreeSlots, IReadOnlyList<SlotDto> Slots);

/// <summary>The queue name of a host: Hangfire routes the host's runs to it.</summary>
public static class HostQueues
{
    public static string For(int hostId) => $"host-{hostId}";
}
