using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Models;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using System.Globalization;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Jobs;

/// <summary>/v1/jobs: submit, list, get, cancel, and a job's events, metrics, checkpoints and artifacts.
/// Another tenant's job id answers 404, as if it did not exist.</summary>
public static class JobEndpoints
{
    public static void MapJobApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/jobs").WithTags("Jobs").RequireAuthorization(Policies.Tenant).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        group.MapPost("", Submit).WithName("submitJob")
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesValidationProblem(StatusCodes.Status400BadRequest)
            .ProducesValidationProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .WithSummary("Submit a training job")
            .WithDescription("The body is the job spec (LLaMA-Factory key names; `dataset` is a dataset id), plus optional `idempotency_key` " +
                             "(a retry with the same key returns the same job) and `priority` (-100..100, higher first).");
        group.MapGet("", List).WithName("listJobs").WithSummary("List jobs, newest first (filter by state; paged)");
        group.MapGet("/{id:guid}", async Task<Results<Ok<JobDto>, NotFound>> (Guid id, ClaimsPrincipal user, ServiceDb db) =>
            await Find(db, user, id) is { } job ? TypedResults.Ok(job.ToDto()) : TypedResults.NotFound()).WithName("getJob").WithSummary("A job: state, progress, ETA, error");
        group.MapPost("/{id:guid}/cancel", Cancel).WithName("cancelJob").ProducesProblem(StatusCodes.Status409Conflict).WithSummary("Cancel a job (a running one goes through cancelling)");
        group.MapGet("/{id:guid}/events", Events).WithName("listJobEvents").WithSummary("Every state transition, with time and reason, oldest first (paged)");
        group.MapGet("/{id:guid}/metrics", Metrics).WithName("listJobMetrics").WithSummary("Every logged step, in step order (paged; after=<step> for the tail)");
        group.MapGet("/{id:guid}/checkpoints", Checkpoints).WithName("listJobCheckpoints").WithSummary("Checkpoints written so far, in step order (paged)");
        group.MapGet("/{id:guid}/artifacts", Artifacts).WithName("listJobArtifacts").WithSummary("Files of the job's output directory, by path (paged)");
        group.MapGet("/{id:guid}/artifacts/{**path}", Download).WithName("downloadJobArtifact").WithMetadata(new BinaryResponse()).WithSummary("Download one output file")
            .WithDescription("`path` as listed by listJobArtifacts; its slashes may be sent encoded (checkpoint-6%2Fconfig.json).");
        group.MapGet("/{id:guid}/download", DownloadByQuery).WithName("downloadJobFile").WithMetadata(new BinaryResponse()).WithSummary("Download one output file named by ?path=")
            .WithDescription("The same file as downloadJobArtifact, for clients that cannot put a nested path in the URL path.");
    }

    /// <summary>The body is read by <see cref="JobBody"/> (size, UTF-8, duplicate keys) rather than bound, so bad
    /// bytes are a 400 naming the field, never a 500; its schema in the OpenAPI document comes from the declaration.</summary>
    private static async Task<Results<Created<JobDto>, Ok<JobDto>, ProblemHttpResult>> Submit(
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, ModelRegistry models, PlacementTrigger placement, IJobNotifier notifier, CancellationToken ct)
    {
        var (body, problem) = await JobBody.ReadAsync(request, ct);
        return problem ?? await JobSubmission.Submit(body!, user, db, models, placement, ct, notifier);
    }

    internal static Task<Job?> Find(ServiceDb db, ClaimsPrincipal user, Guid id)
    {
        var tenant = user.TenantId();
        return db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenant);
    }

    /// <param name="state">Only jobs in this state.</param>
    /// <param name="after">The next_after of the previous page; omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<JobDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, ServiceDb db, [ClosedSet(typeof(JobStates))] string? state, string? after, int? limit, CancellationToken ct)
    {
        if (state != null && !JobStates.All.Contains(state)) return Problems.BadQuery("state", $"'{WireNames.Shorten(state)}' is not one of {string.Join(", ", JobStates.All)}");
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        var tenant = user.TenantId();
        var q = db.Jobs.AsNoTracking().Where(j => j.TenantId == tenant);
        if (state != null) q = q.Where(j => j.State == state);
        if (after != null)
        {
            // Newest first: the page after job c holds the jobs created before it (ties broken by id).
            if (!Guid.TryParse(after, out var cursorId) || await db.Jobs.AsNoTracking().Where(j => j.Id == cursorId && j.TenantId == tenant)
                    .Select(j => (DateTime?)j.CreatedAt).FirstOrDefaultAsync(ct) is not { } at)
                return Paging.BadCursor(after, "one of this tenant's job ids");
            q = q.Where(j => j.CreatedAt < at || (j.CreatedAt == at && j.Id.CompareTo(cursorId) < 0));
        }
        return TypedResults.Ok(await Paging.ReadAsync(q.OrderByDescending(j => j.CreatedAt).ThenByDescending(j => j.Id), take, j => j.ToDto(), j => j.Id.ToString(), ct));
    }

    private static async Task<Results<Ok<JobDto>, NotFound, ProblemHttpResult>> Cancel(Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var (job, conflict) = await JobControl.CancelAsync(id, user, db, jobs, placement);
        return conflict != null ? Problems.Conflict(conflict) : TypedResults.Ok(job.ToDto());
    }

    /// <param name="id">The job.</param>
    /// <param name="after">The next_after of the previous page (an event id); omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<JobEventDto>>, NotFound, ProblemHttpResult>> Events(Guid id, string? after, int? limit, ClaimsPrincipal user, ServiceDb db, CancellationToken ct)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        long from = -1;
        if (after != null && !long.TryParse(after, out from)) return Paging.BadCursor(after, "an event id");
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var q = db.JobEvents.AsNoTracking().Where(e => e.JobId == id && e.Id > from).OrderBy(e => e.Id);
        return TypedResults.Ok(await Paging.ReadAsync(q, take, e => e.ToDto(), e => e.Id.ToString(CultureInfo.InvariantCulture), ct));
    }

    /// <param name="id">The job.</param>
    /// <param name="after">A step: only steps after it (the next_after of the previous page, or the newest step a client already holds).</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<MetricDto>>, NotFound, ProblemHttpResult>> Metrics(Guid id, string? after, int? limit, ClaimsPrincipal user, ServiceDb db, CancellationToken ct)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        int from = -1;
        if (after != null && !int.TryParse(after, out from)) return Paging.BadCursor(after, "a step number");
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var q = db.Metrics.AsNoTracking().Where(m => m.JobId == id && m.Step > from).OrderBy(m => m.Step);
        return TypedResults.Ok(await Paging.ReadAsync(q, take, m => m.ToDto(), m => m.Step.ToString(CultureInfo.InvariantCulture), ct));
    }

    /// <param name="id">The job.</param>
    /// <param name="after">The next_after of the previous page (a step); omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<CheckpointDto>>, NotFound, ProblemHttpResult>> Checkpoints(Guid id, string? after, int? limit, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        int from = -1;
        if (after != null && !int.TryParse(after, out from)) return Paging.BadCursor(after, "a step number");
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        return TypedResults.Ok(Paging.Past(JobFiles.Checkpoints(JobPaths.OutputDir(o.Value, id)), c => c.Step > from, take, c => c.Step.ToString(CultureInfo.InvariantCulture)));
    }

    /// <param name="id">The job.</param>
    /// <param name="after">The next_after of the previous page (a path); omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<ArtifactDto>>, NotFound, ProblemHttpResult>> Artifacts(Guid id, string? after, int? limit, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        return TypedResults.Ok(Paging.Past(JobFiles.List(JobPaths.OutputDir(o.Value, id)), after == null ? null : a => string.CompareOrdinal(a.Path, after) > 0, take, a => a.Path));
    }

    /// <param name="id">The job.</param>
    /// <param name="path">The file's path in the output directory, as listed (checkpoint-6/config.json; slashes may be encoded).</param>
    private static Task<Results<FileStreamHttpResult, NotFound>> Download(Guid id, string path, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o) =>
        // The router leaves an encoded slash encoded (%2F) in a catch-all value: decode it here, once.
        Serve(id, Uri.UnescapeDataString(path), user, db, o);

    /// <param name="id">The job.</param>
    /// <param name="path">The file's path in the output directory, as listed (checkpoint-6/config.json).</param>
    private static Task<Results<FileStreamHttpResult, NotFound>> DownloadByQuery(Guid id, [FromQuery] string path, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o) =>
        Serve(id, path, user, db, o);

    private static async Task<Results<FileStreamHttpResult, NotFound>> Serve(Guid id, string path, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var file = JobFiles.Resolve(JobPaths.OutputDir(o.Value, id), path);
        return file == null ? TypedResults.NotFound()
            : TypedResults.File(File.OpenRead(file), "application/octet-stream", Path.GetFileName(file), enableRangeProcessing: true);
    }
}
