using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Liveness;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Hosts;

/// <summary>/v1/hosts: trainer hosts register and heartbeat (host keys, each bound to one host); a heartbeat's
/// answer leases the host its placed runs. Anyone signed in can see the hosts and their slots, with job ids
/// shown only for the caller's own jobs.</summary>
public static class HostEndpoints
{
    /// <summary>The OpenAPI document of what trainer hosts call (host keys), apart from the tenants' document.</summary>
    public const string Document = "hosts";

    public static void MapHostApi(this IEndpointRouteBuilder app)
    {
        var hosts = app.MapGroup("/v1/hosts").WithTags("Hosts").ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        hosts.MapGet("", List).WithName("listHosts").RequireAuthorization(Policies.Tenant).WithSummary("Trainer hosts, their slots and what holds each, by id (paged)");
        hosts.MapGet("/{id:int}", Get).WithName("getHost").RequireAuthorization(Policies.Tenant).WithSummary("One trainer host");
        hosts.MapPost("/register", Register).WithName("registerHost").WithGroupName(Document).RequireAuthorization(Policies.Host)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status409Conflict).WithSummary("A trainer host registers its slots (host key)");
        hosts.MapPost("/{id:int}/heartbeat", Heartbeat).WithName("heartbeatHost").WithGroupName(Document).RequireAuthorization(Policies.Host)
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("A trainer host is alive; the answer lists runs to stop and runs leased to it to start");
    }

    /// <param name="after">The next_after of the previous page; omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<HostDto>>, ProblemHttpResult>> List(string? after, int? limit, ClaimsPrincipal user, ServiceDb db)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        int from = 0;
        if (after != null && !int.TryParse(after, out from)) return Paging.BadCursor(after, "a host id");
        var hosts = await Dtos(db, user, db.Hosts.AsNoTracking().Where(h => h.Id > from).OrderBy(h => h.Id).Take(take + 1));
        return TypedResults.Ok(Paging.Past(hosts, null, take, h => h.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    /// <param name="id">The host's id.</param>
    private static async Task<Results<Ok<HostDto>, NotFound>> Get(int id, ClaimsPrincipal user, ServiceDb db) =>
        (await Dtos(db, user, db.Hosts.AsNoTracking().Where(h => h.Id == id))).FirstOrDefault() is { } h ? TypedResults.Ok(h) : TypedResults.NotFound();

    private static async Task<List<HostDto>> Dtos(ServiceDb db, ClaimsPrincipal user, IQueryable<TrainerHost> query)
    {
        var hosts = await query.Include(h => h.Slots).ToListAsync();
        var held = hosts.SelectMany(h => h.Slots).Where(s => s.JobId != null).Select(s => s.JobId!.Value).Distinct().ToList();
        var tenant = user.TenantId();
        var visible = user.IsAdmin() ? held.ToHashSet()
            : (await db.Jobs.AsNoTracking().Where(j => held.Contains(j.Id) && j.TenantId == tenant).Select(j => j.Id).ToListAsync()).ToHashSet();
        return hosts.Select(h => h.ToDto(id => id is { } j && visible.Contains(j) ? j : null)).ToList();
    }

    private static async Task<Results<Ok<RegisterHostResponse>, ProblemHttpResult>> Register(RegisterHostRequest request, ClaimsPrincipal user, ServiceDb db,
        LivenessCheck liveness, PlacementTrigger placement, IOptions<SchedulerOptions> scheduler)
    {
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 200) return Problems.Invalid("name", "required: 1 to 200 characters");
        if (request.Slots is not { Count: >= 1 and <= 1024 }) return Problems.Invalid("slots", "a host needs 1 to 1024 slots");
        if (request.Slots.Any(s => string.IsNullOrWhiteSpace(s.Device))) return Problems.Invalid("slots", "every slot needs a device (cpu, cuda:0, …)");
        var artifacts = request.Artifacts ?? ArtifactAccess.Shared;
        if (!ArtifactAccess.All.Contains(artifacts)) return Problems.Invalid("artifacts", $"one of {string.Join(", ", ArtifactAccess.All)} (shared: the host mounts the API's data directory; remote: it downloads inputs and uploads outputs)");
        if (request.MpiHost is { } mpiHost && (MpiHosts.Parse($"{mpiHost}:1", out _).Count != 1))
            return Problems.Invalid("mpi_host", $"'{WireNames.Shorten(mpiHost)}' is not a host name or address the MPI launcher can reach (letters, digits, '.', '_', '-'; up to 253 characters); omit it for a host that joins no spanning worlds");

        var key = user.KeyId();
        var now = DateTime.UtcNow;
        var host = await db.Hosts.FirstOrDefaultAsync(h => h.Name == request.Name);
        // Checked before anything changes: another key's host name is refused without touching its runs.
        if (host is { KeyId: { } owner } && owner != key) return HostOwnership.Forbidden(host.Id);
        if (await db.Hosts.AsNoTracking().Where(h => h.KeyId == key && h.Name != request.Name).Select(h => new { h.Id, h.Name }).FirstOrDefaultAsync() is { } other)
            return Problems.Status(StatusCodes.Status403Forbidden, "Not this key's host", $"this host key is bound to host {other.Id} ('{other.Name}'); a host key is one host: create another key for another host");
        if (host == null)
        {
            host = new TrainerHost { Name = request.Name, State = HostStates.Online, RegisteredAt = now, LastHeartbeatAt = now, KeyId = key, Artifacts = artifacts, MpiHost = request.MpiHost };
            db.Hosts.Add(host);
            try { await db.SaveChangesAsync(); }
            catch (DbUpdateException) { return Problems.Conflict($"host '{request.Name}' (or another host of this key) is registering concurrently; retry"); }
        }
        else
        {
            // The same host starting again: what it ran died with the old process. Requeue those runs
            // (they resume from their checkpoints) before its slots are replaced.
            await liveness.RequeueRunsOfLostHostsAsync(host: host.Id, why: $"host {host.Id} restarted");
            host.State = HostStates.Online;
            host.RegisteredAt = now;
            host.LastHeartbeatAt = now;
            host.KeyId = key;
            host.Artifacts = artifacts;
            host.MpiHost = request.MpiHost;
            (host.HeldUntil, host.HeldReason, host.Holds) = (null, null, 0);   // restarted: it may join spanning worlds again
            await db.HostSlots.Where(s => s.HostId == host.Id).ExecuteDeleteAsync();
            await db.SaveChangesAsync();
        }
        db.HostSlots.AddRange(request.Slots.Select((s, i) => new HostSlot { HostId = host.Id, Index = i, Device = s.Device, MemoryBytes = s.MemoryBytes }));
        await db.SaveChangesAsync();
        placement.Request();
        var o = scheduler.Value;
        return TypedResults.Ok(new RegisterHostResponse(host.Id, o.HeartbeatSeconds, LeaseSeconds(o)));
    }

    /// <summary>A trainer outlives a silent host process this long at most: half the API's host timeout, so a
    /// frozen host's trainers are dead before the API declares the host lost and places its runs elsewhere.</summary>
    public static int LeaseSeconds(SchedulerOptions o) => Math.Max(2, o.HostTimeoutSeconds / 2);

    /// <param name="id">The host's id (from its registration).</param>
    private static async Task<Results<Ok<HeartbeatResponse>, ProblemHttpResult>> Heartbeat(int id, HeartbeatRequest request, ClaimsPrincipal user,
        ServiceDb db, LivenessCheck liveness, PlacementTrigger placement)
    {
        if (await HostOwnership.RefuseAsync(db, user, id) is { } refused) return refused;
        var now = DateTime.UtcNow;
        await db.Hosts.Where(h => h.Id == id).ExecuteUpdateAsync(s => s.SetProperty(h => h.LastHeartbeatAt, now));
        bool lost = await db.Hosts.AnyAsync(h => h.Id == id && h.State == HostStates.Lost);
        if (lost)
        {
            // Declared lost while it was silent: whatever it still runs is a stale attempt. Finish the requeue
            // here (the sweep may not have got to it yet), then take the host back with empty slots.
            await liveness.RequeueRunsOfLostHostsAsync(host: id, why: $"host {id} was lost (no heartbeat)");
            await db.Hosts.Where(h => h.Id == id).ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Online));
            placement.Request();
        }

        // Stop what the host runs but should not: cancelled by a user, or requeued while it was unreachable.
        var running = request.Running ?? [];
        var ids = running.Select(r => r.JobId).ToList();
        var current = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).Select(j => new { j.Id, j.State, j.HostId, j.Attempt }).ToListAsync();
        var stop = running.Where(r => lost || current.FirstOrDefault(j => j.Id == r.JobId) is not { } j
                || j.HostId != id || j.Attempt != r.Attempt || j.State is not (JobStates.Running or JobStates.Scheduled or JobStates.Pausing))
            .Select(r => r.JobId).ToList();
        // Paused by its tenant: the trainer checkpoints and stops (asked again each heartbeat until the host reports it).
        var pause = lost ? [] : running.Where(r => current.FirstOrDefault(j => j.Id == r.JobId) is { State: JobStates.Pausing } j && j.HostId == id && j.Attempt == r.Attempt)
            .Select(r => r.JobId).ToList();
        // The lease: runs placed on this host that it has not started yet.
        var start = lost ? [] : (await db.Jobs.AsNoTracking().Where(j => j.HostId == id && j.State == JobStates.Scheduled)
                .Select(j => new RunningRun(j.Id, j.Attempt)).ToListAsync())
            .Where(r => !running.Contains(r)).ToList();
        // Worlds launched by another host that hold slots here: nothing to start, the slots stay busy while they run.
        var joined = lost ? [] : await db.Jobs.AsNoTracking().Where(j => j.SpanHostIds.Contains(id) && JobStates.HoldingSlots.Contains(j.State))
            .Select(j => new RunningRun(j.Id, j.Attempt)).ToListAsync();
        return TypedResults.Ok(new HeartbeatResponse(stop, start, lost, pause, joined));
    }
}
