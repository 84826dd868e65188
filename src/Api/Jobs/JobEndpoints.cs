using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Models;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using Microsoft.AspNetCore.Http.HttpResults;
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
        group.MapPost("/", Submit)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesValidationProblem(StatusCodes.Status400BadRequest)
            .ProducesValidationProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .WithSummary("Submit a training job")
            .WithDescription("The body is the job spec (LLaMA-Factory key names; `dataset` is a dataset id), plus optional `idempotency_key` " +
                             "(a retry with the same key returns the same job) and `priority` (-100..100, higher first).");
        group.MapGet("/", List).ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("List jobs, newest first (filter by state; paged)");
        group.MapGet("/{id:guid}", async Task<Results<Ok<JobDto>, NotFound>> (Guid id, ClaimsPrincipal user, ServiceDb db) =>
            await Find(db, user, id) is { } job ? TypedResults.Ok(job.ToDto()) : TypedResults.NotFound()).WithSummary("A job: state, progress, ETA, error");
        group.MapPost("/{id:guid}/cancel", Cancel).ProducesProblem(StatusCodes.Status409Conflict).WithSummary("Cancel a job (a running one goes through cancelling)");
        group.MapGet("/{id:guid}/events", async Task<Results<Ok<List<JobEventDto>>, NotFound>> (Guid id, ClaimsPrincipal user, ServiceDb db) =>
            await Find(db, user, id) is null ? TypedResults.NotFound()
                : TypedResults.Ok((await db.JobEvents.AsNoTracking().Where(e => e.JobId == id).OrderBy(e => e.Id).ToListAsync()).Select(e => e.ToDto()).ToList()))
            .WithSummary("Every state transition, with time and reason");
        group.MapGet("/{id:guid}/metrics", Metrics).WithSummary("Every logged step (after_step for the tail)");
        group.MapGet("/{id:guid}/checkpoints", Checkpoints).WithSummary("Checkpoints written so far");
        group.MapGet("/{id:guid}/artifacts", Artifacts).WithSummary("Files of the job's output directory");
        group.MapGet("/{id:guid}/artifacts/{**path}", Download).Produces(StatusCodes.Status200OK, contentType: "application/octet-stream").WithSummary("Download one output file");
    }

    /// <summary>The body is read by <see cref="JobBody"/> (size, UTF-8, duplicate keys) rather than bound, so bad
    /// bytes are a 400 naming the field, never a 500; its schema in the OpenAPI document comes from the declaration.</summary>
    private static async Task<Results<Created<JobDto>, Ok<JobDto>, ProblemHttpResult>> Submit(
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, ModelRegistry models, PlacementTrigger placement, CancellationToken ct)
    {
        var (body, problem) = await JobBody.ReadAsync(request, ct);
        return problem ?? await JobSubmission.Submit(body!, user, db, models, placement, ct);
    }

    internal static Task<Job?> Find(ServiceDb db, ClaimsPrincipal user, Guid id)
    {
        var tenant = user.TenantId();
        return db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenant);
    }

    private static async Task<Results<Ok<JobPage>, ProblemHttpResult>> List(ClaimsPrincipal user, ServiceDb db, string? state, int? limit, int? offset)
    {
        if (state != null && !JobStates.All.Contains(state)) return Problems.Invalid("state", $"'{state}' is not one of {string.Join(", ", JobStates.All)}");
        int take = limit ?? 50, skip = offset ?? 0;
        if (take is < 1 or > 500) return Problems.Invalid("limit", "must be 1 to 500");
        if (skip < 0) return Problems.Invalid("offset", "must be ≥ 0");
        var tenant = user.TenantId();
        var q = db.Jobs.AsNoTracking().Where(j => j.TenantId == tenant);
        if (state != null) q = q.Where(j => j.State == state);
        int total = await q.CountAsync();
        var rows = await q.OrderByDescending(j => j.CreatedAt).ThenByDescending(j => j.Id).Skip(skip).Take(take).ToListAsync();
        return TypedResults.Ok(new JobPage(rows.Select(j => j.ToDto()).ToList(), total, skip, take, skip + rows.Count < total));
    }

    private static async Task<Results<Ok<JobDto>, NotFound, ProblemHttpResult>> Cancel(Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var (job, conflict) = await JobControl.CancelAsync(id, user, db, jobs, placement);
        return conflict != null ? Problems.Conflict(conflict) : TypedResults.Ok(job.ToDto());
    }

    private static async Task<Results<Ok<List<MetricDto>>, NotFound>> Metrics(Guid id, int? afterStep, ClaimsPrincipal user, ServiceDb db)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var rows = await db.Metrics.AsNoTracking().Where(m => m.JobId == id && m.Step > (afterStep ?? -1)).OrderBy(m => m.Step).ToListAsync();
        return TypedResults.Ok(rows.Select(m => m.ToDto()).ToList());
    }

    private static async Task<Results<Ok<List<CheckpointDto>>, NotFound>> Checkpoints(Guid id, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        return TypedResults.Ok(JobFiles.Checkpoints(JobPaths.OutputDir(o.Value, id)));
    }

    private static async Task<Results<Ok<List<ArtifactDto>>, NotFound>> Artifacts(Guid id, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        return TypedResults.Ok(JobFiles.List(JobPaths.OutputDir(o.Value, id)));
    }

    private static async Task<Results<PhysicalFileHttpResult, NotFound>> Download(Guid id, string path, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (await Find(db, user, id) is null) return TypedResults.NotFound();
        var file = JobFiles.Resolve(JobPaths.OutputDir(o.Value, id), path);
        return file == null ? TypedResults.NotFound() : TypedResults.PhysicalFile(file, "application/octet-stream", Path.GetFileName(file), enableRangeProcessing: true);
    }
}
