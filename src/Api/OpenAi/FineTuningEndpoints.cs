using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Api.Models;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.OpenAi;

/// <summary>
/// /v1/fine_tuning/jobs, OpenAI's fine-tuning API over our jobs: the same tenants, keys and jobs as /v1/jobs (a job
/// made here is listed there, and the other way round). Create maps the request onto the native spec
/// (<see cref="FineTuningRequest"/>) and submits it through <see cref="JobSubmission"/>; cancel, pause and resume are
/// <see cref="JobControl"/>'s. Lists are newest first with OpenAI's <c>after</c>/<c>limit</c> cursor.
/// </summary>
public static class FineTuningEndpoints
{
    private const int MaxBodyBytes = 1 << 20;

    public static void MapFineTuningApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/fine_tuning/jobs").WithTags("OpenAI fine-tuning").WithGroupName(OpenAiSurface.Document).RequireAuthorization(Policies.Tenant);
        group.MapPost("/", Create).Produces<OpenAiErrorBody>(StatusCodes.Status400BadRequest).Produces<OpenAiErrorBody>(StatusCodes.Status409Conflict)
            .WithSummary("Create a fine-tuning job (OpenAI's request; job-spec keys in 'longseq')");
        group.MapGet("/", List).Produces<OpenAiErrorBody>(StatusCodes.Status400BadRequest).WithSummary("The tenant's jobs, newest first");
        group.MapGet("/{id:guid}", async Task<Results<Ok<FineTuningJobObject>, JsonHttpResult<OpenAiErrorBody>>> (Guid id, ClaimsPrincipal user, ServiceDb db) =>
            await JobEndpoints.Find(db, user, id) is { } job ? TypedResults.Ok(FineTuningView.Job(job)) : OpenAiErrors.NotFound("fine-tuning job", id.ToString()))
            .WithSummary("One job");
        group.MapPost("/{id:guid}/cancel", (Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement) =>
            Control(JobControl.CancelAsync, id, user, db, jobs, placement)).Produces<OpenAiErrorBody>(StatusCodes.Status409Conflict).WithSummary("Cancel a job");
        group.MapPost("/{id:guid}/pause", (Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement) =>
            Control(JobControl.PauseAsync, id, user, db, jobs, placement)).Produces<OpenAiErrorBody>(StatusCodes.Status409Conflict)
            .WithSummary("Pause a job: it checkpoints and gives its slots back (status running until it is paused)");
        group.MapPost("/{id:guid}/resume", (Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement) =>
            Control(JobControl.ResumeAsync, id, user, db, jobs, placement)).Produces<OpenAiErrorBody>(StatusCodes.Status409Conflict)
            .WithSummary("Resume a paused job from its checkpoint");
        group.MapGet("/{id:guid}/events", Events).Produces<OpenAiErrorBody>(StatusCodes.Status400BadRequest)
            .WithSummary("State transitions and logged steps (type metrics), newest first");
        group.MapGet("/{id:guid}/checkpoints", Checkpoints).Produces<OpenAiErrorBody>(StatusCodes.Status400BadRequest).WithSummary("Checkpoints, newest first");
    }

    private static async Task<Results<Ok<FineTuningJobObject>, JsonHttpResult<OpenAiErrorBody>>> Create(
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, ModelRegistry models, PlacementTrigger placement, IJobNotifier notifier, CancellationToken ct)
    {
        if (request.ContentLength > MaxBodyBytes) return OpenAiErrors.Error(StatusCodes.Status413PayloadTooLarge, $"the body is over {MaxBodyBytes} bytes");
        JsonObject? body;
        try { body = await JsonNode.ParseAsync(request.Body, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }, cancellationToken: ct) as JsonObject; }
        catch (JsonException e) { return OpenAiErrors.Invalid("body", $"not valid JSON: {e.Message}"); }
        if (body == null) return OpenAiErrors.Invalid("body", "a JSON object");
        FineTuningRequest.Mapped mapped;
        try { mapped = FineTuningRequest.Map(body); }
        catch (FineTuningRequest.Invalid e) { return OpenAiErrors.Invalid(e.Param, e.Message); }

        var submitted = await JobSubmission.Submit(mapped.Native, user, db, models, placement, ct, notifier, job => (job.Suffix, job.Metadata) = (mapped.Suffix, mapped.Metadata));
        Guid? id = submitted.Result switch { Created<JobDto> c => c.Value!.Id, Ok<JobDto> o => o.Value!.Id, _ => null };
        if (id == null) return OpenAiErrors.From((ProblemHttpResult)submitted.Result, mapped.ParamOf);
        return TypedResults.Ok(FineTuningView.Job((await JobEndpoints.Find(db, user, id.Value))!));
    }

    private static async Task<Results<Ok<OpenAiList<FineTuningJobObject>>, JsonHttpResult<OpenAiErrorBody>>> List(ClaimsPrincipal user, ServiceDb db, string? after, int? limit)
    {
        if (OpenAiPaging.Limit(limit, 20, 100) is not { } take) return OpenAiErrors.Invalid("limit", "1 to 100");
        var tenant = user.TenantId();
        var mine = db.Jobs.AsNoTracking().Where(j => j.TenantId == tenant);
        IQueryable<Job> older = mine;
        var before = new List<Job>();
        if (after != null)
        {
            if (!Guid.TryParse(after, out var cursor) || await mine.FirstOrDefaultAsync(j => j.Id == cursor) is not { } from)
                return OpenAiErrors.Invalid("after", $"no job '{after}'");
            // Newest first by (created_at, id): the jobs of the cursor's instant that sort after it, then every older one.
            var sameInstant = await mine.Where(j => j.CreatedAt == from.CreatedAt).OrderByDescending(j => j.Id).ToListAsync();
            before = sameInstant.SkipWhile(j => j.Id != cursor).Skip(1).ToList();
            older = mine.Where(j => j.CreatedAt < from.CreatedAt);
        }
        var rows = before.Concat(await older.OrderByDescending(j => j.CreatedAt).ThenByDescending(j => j.Id).Take(take + 1).ToListAsync()).ToList();
        var page = rows.Take(take).Select(FineTuningView.Job).ToList();
        return TypedResults.Ok(OpenAiList<FineTuningJobObject>.Of(page, rows.Count > take, j => j.Id));
    }

    private static async Task<Results<Ok<FineTuningJobObject>, JsonHttpResult<OpenAiErrorBody>>> Control(
        Func<Guid, ClaimsPrincipal, ServiceDb, JobStateMachine, PlacementTrigger, Task<JobControl.Outcome>> action,
        Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        if (await JobEndpoints.Find(db, user, id) is null) return OpenAiErrors.NotFound("fine-tuning job", id.ToString());
        var (job, conflict) = await action(id, user, db, jobs, placement);
        return conflict != null ? OpenAiErrors.Conflict(conflict) : TypedResults.Ok(FineTuningView.Job(job));
    }

    private static async Task<Results<Ok<OpenAiList<FineTuningEventObject>>, JsonHttpResult<OpenAiErrorBody>>> Events(
        Guid id, string? after, int? limit, ClaimsPrincipal user, ServiceDb db)
    {
        if (await JobEndpoints.Find(db, user, id) is null) return OpenAiErrors.NotFound("fine-tuning job", id.ToString());
        if (OpenAiPaging.Limit(limit, 20, 100) is not { } take) return OpenAiErrors.Invalid("limit", "1 to 100");
        var states = await db.JobEvents.AsNoTracking().Where(e => e.JobId == id).ToListAsync();
        var metrics = await db.Metrics.AsNoTracking().Where(m => m.JobId == id).ToListAsync();
        // Newest first; at one instant a transition sorts before the steps logged then (it happened after them).
        var all = states.Select(e => (e.At, Order: 1, Key: e.Id, Event: FineTuningView.Event(e)))
            .Concat(metrics.Select(m => (m.At, Order: 0, Key: (long)m.Step, Event: FineTuningView.Metric(m))))
            .OrderByDescending(x => x.At).ThenByDescending(x => x.Order).ThenByDescending(x => x.Key).Select(x => x.Event).ToList();
        if (OpenAiPaging.After(all, e => e.Id, after, take) is not var (page, more)) return OpenAiErrors.Invalid("after", $"no event '{after}' of job {id}");
        return TypedResults.Ok(OpenAiList<FineTuningEventObject>.Of(page, more, e => e.Id));
    }

    private static async Task<Results<Ok<OpenAiList<FineTuningCheckpointObject>>, JsonHttpResult<OpenAiErrorBody>>> Checkpoints(
        Guid id, string? after, int? limit, ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o)
    {
        if (await JobEndpoints.Find(db, user, id) is null) return OpenAiErrors.NotFound("fine-tuning job", id.ToString());
        if (OpenAiPaging.Limit(limit, 10, 100) is not { } take) return OpenAiErrors.Invalid("limit", "1 to 100");
        var found = JobFiles.Checkpoints(JobPaths.OutputDir(o.Value, id));
        var steps = found.Select(c => c.Step).ToList();
        var metrics = await db.Metrics.AsNoTracking().Where(m => m.JobId == id && steps.Contains(m.Step)).ToDictionaryAsync(m => m.Step);
        var all = found.OrderByDescending(c => c.Step).Select(c => FineTuningView.Checkpoint(id, c, metrics.GetValueOrDefault(c.Step))).ToList();
        if (OpenAiPaging.After(all, c => c.Id, after, take) is not var (page, more)) return OpenAiErrors.Invalid("after", $"no checkpoint '{after}' of job {id}");
        return TypedResults.Ok(OpenAiList<FineTuningCheckpointObject>.Of(page, more, c => c.Id));
    }
}
