using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Api.Datasets;
using LongSeqService.Api.Progress;
using LongSeqService.Scheduler;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Runs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Hosts;

/// <summary>
/// What a trainer host calls while executing a run (host keys only, each checked against the one host it
/// is bound to): start (scheduled → running, only for the host and attempt the job is bound to, so a
/// duplicate or stale start is refused), metrics (trainer_log.jsonl records), finish (running → succeeded |
/// failed | back to queued, cancelling → cancelled). Every report carries the attempt, the fencing token:
/// a stale attempt gets 409 and its host stops that trainer. Each is a guarded UPDATE, so a report
/// replayed from the host's spool is applied once.
/// </summary>
public static class RunEndpoints
{
    public static void MapRunApi(this IEndpointRouteBuilder app)
    {
        var runs = app.MapGroup("/v1/hosts/{hostId:int}/runs/{jobId:guid}").WithTags("Runs").WithGroupName(HostEndpoints.Document).RequireAuthorization(Policies.Host)
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status409Conflict);
        runs.MapPost("/start", Start).WithName("startRun").WithSummary("Start a run placed on this host (409 when it is not, or no longer, this host's)");
        runs.MapPost("/metrics", Metrics).WithName("reportRunMetrics").ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("Forward trainer_log.jsonl records of a running job");
        runs.MapPost("/finish", Finish).WithName("finishRun").ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("Report how a run ended");
    }

    /// <param name="hostId">The host's id.</param>
    /// <param name="jobId">The job.</param>
    private static async Task<Results<Ok<StartRunResponse>, ProblemHttpResult>> Start(int hostId, Guid jobId, StartRunRequest request, ClaimsPrincipal user,
        ServiceDb db, JobStateMachine jobs, DatasetStore store, IOptions<LongSeqOptions> o, PlacementTrigger placement, ContentHashes hashes, CancellationToken ct)
    {
        if (await HostOwnership.RefuseAsync(db, user, hostId) is { } refused) return refused;
        var now = DateTime.UtcNow;
        bool started = await jobs.TryMoveAsync(jobId, JobStates.Scheduled, JobStates.Running, $"attempt {request.Attempt} started on host {hostId}",
            s => s.SetProperty(j => j.StartedAt, j => j.StartedAt ?? now).SetProperty(j => j.StepAtStart, j => j.CurrentStep),
            q => q.Where(j => j.HostId == hostId && j.Attempt == request.Attempt));
        if (!started)
        {
            // Cancelled between placement and start: finish the cancellation here.
            if (await jobs.TryMoveAsync(jobId, JobStates.Cancelling, JobStates.Cancelled, "cancelled before the run started",
                    guard: q => q.Where(j => j.HostId == hostId && j.Attempt == request.Attempt)))
                placement.Request();
            var state = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.State, j.HostId, j.Attempt }).FirstOrDefaultAsync();
            return Problems.Conflict(state == null ? $"no job {jobId}"
                : $"job {jobId} is {state.State} (host {state.HostId?.ToString() ?? "none"}, attempt {state.Attempt}); not startable as attempt {request.Attempt} on host {hostId}");
        }
        var job = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == jobId);
        // The resolved model path (never shown to the tenant), and a spanning world's mpi_hosts from its binding.
        if (await RunWorld.ApplyAsync(db, job, job.RunSpec(), ct) is not { } spec)
        {
            await jobs.TryMoveAsync(jobId, JobStates.Running, JobStates.Queued, $"attempt {job.Attempt}: the hosts of its world changed since placement; requeued",
                s => s.SetProperty(j => j.HostId, (int?)null), q => q.Where(j => j.Attempt == job.Attempt), ct);
            placement.Request();
            return Problems.Conflict($"job {jobId} attempt {job.Attempt}: its world's hosts no longer hold its slots; requeued");
        }
        // Dataset ids become the files' paths in the store, in the spec's order (the trainer reads each by path).
        async Task<List<string>?> Paths(string? ids)
        {
            if (string.IsNullOrWhiteSpace(ids)) return null;
            var list = JobSubmission.DatasetIds(ids);
            var stored = await db.Datasets.AsNoTracking().Where(d => list.Contains(d.Id)).ToDictionaryAsync(d => d.Id, d => d.StoragePath);
            return list.Select(id => store.FullPath(stored[id])).ToList();
        }
        var datasets = (await Paths(spec.Dataset ?? job.DatasetId))!;
        var eval = await Paths(spec.EvalDataset);
        var (runDir, outputDir) = (JobPaths.RunDir(o.Value, jobId), JobPaths.OutputDir(o.Value, jobId));
        if (await db.Hosts.AsNoTracking().Where(h => h.Id == hostId).Select(h => h.Artifacts).FirstAsync() == ArtifactAccess.Remote)
        {
            // A host with its own disk gets no server path: names, and the inputs to download by content hash.
            var inputs = await RunInputManifest.WriteAsync(runDir, job.Attempt, datasets, eval, job.ModelPath, outputDir, hashes, ct);
            var names = string.Join(",", inputs.Datasets.Select(d => d.Path));
            spec = spec with
            {
                ModelNameOrPath = inputs.Model != null ? job.Model : spec.ModelNameOrPath, Dataset = names,
                EvalDataset = inputs.EvalDatasets is { } e ? string.Join(",", e.Select(d => d.Path)) : null,
            };
            return TypedResults.Ok(new StartRunResponse(jobId, job.Attempt, spec, names, JobPaths.Relative(o.Value, runDir), JobPaths.Relative(o.Value, outputDir), inputs));
        }
        var datasetPaths = string.Join(",", datasets);
        spec = spec with { Dataset = datasetPaths, EvalDataset = eval != null ? string.Join(",", eval) : null };
        return TypedResults.Ok(new StartRunResponse(jobId, job.Attempt, spec, datasetPaths, runDir, outputDir));
    }

    /// <param name="hostId">The host's id.</param>
    /// <param name="jobId">The job.</param>
    private static async Task<Results<NoContent, ProblemHttpResult>> Metrics(int hostId, Guid jobId, RunMetricsRequest request, ClaimsPrincipal user,
        ServiceDb db, MetricIngest ingest)
    {
        if (await HostOwnership.RefuseAsync(db, user, hostId) is { } refused) return refused;
        if (request.Records is not { Count: <= 10_000 }) return Problems.Invalid("records", "1 to 10000 trainer_log.jsonl records");
        var accepted = await ingest.IngestAsync(hostId, jobId, request.Attempt, request.Records);
        return accepted ? TypedResults.NoContent() : Stale(jobId, request.Attempt, hostId);
    }

    /// <summary>409: this attempt is no longer the job's current one on this host; the host must stop it.</summary>
    private static ProblemHttpResult Stale(Guid jobId, int attempt, int hostId) =>
        Problems.Conflict($"job {jobId} attempt {attempt} is not running on host {hostId}: stop this trainer");

    /// <param name="hostId">The host's id.</param>
    /// <param name="jobId">The job.</param>
    private static async Task<Results<NoContent, ProblemHttpResult>> Finish(int hostId, Guid jobId, FinishRunRequest request, ClaimsPrincipal user,
        ServiceDb db, JobStateMachine jobs, PlacementTrigger placement, IOptions<LongSeqOptions> o, IOptions<SchedulerOptions> scheduler)
    {
        if (await HostOwnership.RefuseAsync(db, user, hostId) is { } refused) return refused;
        if (!RunOutcomes.All.Contains(request.Outcome)) return Problems.Invalid("outcome", $"one of {string.Join(", ", RunOutcomes.All)}");
        Func<IQueryable<Job>, IQueryable<Job>> mine = q => q.Where(j => j.HostId == hostId && j.Attempt == request.Attempt);
        // The trainer's last line names its files by absolute path; the tenant reads it without the server's data directory.
        var error = JobPaths.Scrub(o.Value, request.Error is { Length: > 2000 } e ? e[..2000] : request.Error);
        bool done = request.Outcome switch
        {
            RunOutcomes.Succeeded => await jobs.TryMoveAsync(jobId, JobStates.Running, JobStates.Succeeded, "training finished", guard: mine)
                                  || await jobs.TryMoveAsync(jobId, JobStates.Cancelling, JobStates.Succeeded, "training finished before the cancellation reached it", guard: mine)
                                  || await jobs.TryMoveAsync(jobId, JobStates.Pausing, JobStates.Succeeded, "training finished before the pause reached it", guard: mine),
            // A pause leaves no host behind: the job holds no slots and is placed anew (attempt + 1) when resumed.
            RunOutcomes.Paused => await jobs.TryMoveAsync(jobId, JobStates.Pausing, JobStates.Paused, $"paused: {error ?? "checkpoint saved"}; resume to continue from it",
                                      s => s.SetProperty(j => j.HostId, (int?)null), mine)
                               || await jobs.TryMoveAsync(jobId, JobStates.Cancelling, JobStates.Cancelled, "stopped", guard: mine),
            RunOutcomes.Failed => await jobs.TryMoveAsync(jobId, JobStates.Running, JobStates.Failed, $"trainer exited with code {request.ExitCode}: {error}",
                                      s => s.SetProperty(j => j.Error, error), mine)
                               || await jobs.TryMoveAsync(jobId, JobStates.Pausing, JobStates.Failed, $"trainer exited with code {request.ExitCode} while pausing: {error}",
                                      s => s.SetProperty(j => j.Error, error), mine)
                               || await jobs.TryMoveAsync(jobId, JobStates.Cancelling, JobStates.Cancelled, "stopped", guard: mine),
            RunOutcomes.Interrupted => await jobs.TryMoveAsync(jobId, JobStates.Running, JobStates.Queued,
                                          $"attempt {request.Attempt} interrupted on host {hostId} ({error ?? "no reason given"}); requeued, resumes from its newest checkpoint",
                                          s => s.SetProperty(j => j.HostId, (int?)null), mine)
                                    || await jobs.TryMoveAsync(jobId, JobStates.Pausing, JobStates.Paused,
                                          $"attempt {request.Attempt} interrupted on host {hostId} while pausing; paused, resumes from its newest checkpoint",
                                          s => s.SetProperty(j => j.HostId, (int?)null), mine)
                                    || await jobs.TryMoveAsync(jobId, JobStates.Cancelling, JobStates.Cancelled, "stopped", guard: mine),
            _ => await jobs.TryMoveAsync(jobId, JobStates.Cancelling, JobStates.Cancelled, "trainer stopped", guard: mine)
                 || await jobs.TryMoveAsync(jobId, JobStates.Pausing, JobStates.Paused, "trainer stopped while pausing; resumes from its newest checkpoint",
                        s => s.SetProperty(j => j.HostId, (int?)null), mine),
        };
        if (!done) return Stale(jobId, request.Attempt, hostId);
        if (request.Outcome == RunOutcomes.Interrupted && request.LostHost is { Length: > 0 and <= 253 } lostHost)
            await HoldLostHostAsync(db, jobId, request.Attempt, hostId, lostHost, error, scheduler.Value);
        placement.Request();
        return TypedResults.NoContent();
    }

    /// <summary>
    /// A world across hosts lost a host (or its launcher could not reach one): that host is kept out of spanning worlds
    /// for a while, or the requeued job would be placed straight back onto it — a host that died stays Online until its
    /// heartbeat times out, and one that is up but unreachable over ssh heartbeats on. Each hold since the host last
    /// registered is twice as long as the one before; registering again (the host restarted) ends it.
    /// </summary>
    private static async Task HoldLostHostAsync(ServiceDb db, Guid jobId, int attempt, int reportingHost, string lostHost, string? error, SchedulerOptions o)
    {
        var span = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => j.SpanHostIds).FirstAsync();
        int[] world = [reportingHost, .. span];
        var host = await db.Hosts.FirstOrDefaultAsync(h => world.Contains(h.Id) && h.MpiHost == lostHost);
        if (host is null) return;                                          // not a host of this world: nothing to hold
        var hold = TimeSpan.FromSeconds(Math.Min(o.LostHostHoldMaxSeconds, o.LostHostHoldSeconds * Math.Pow(2, Math.Min(host.Holds, 20))));
        host.HeldUntil = DateTime.UtcNow + hold;
        host.HeldReason = $"job {jobId} attempt {attempt} on host {reportingHost}: {error ?? "the host was lost"}";
        host.Holds++;
        await db.SaveChangesAsync();
    }
}
