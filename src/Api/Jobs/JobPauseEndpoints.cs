using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LongSeqService.Api.Jobs;

/// <summary>POST /v1/jobs/{id}/pause and /resume: a paused job saves a checkpoint, gives its slots back and waits;
/// resumed, it is queued and placed again, and continues from that checkpoint as if it had never stopped.</summary>
public static class JobPauseEndpoints
{
    public static void MapJobPauseApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/jobs").WithTags("Jobs").RequireAuthorization(Policies.Tenant).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        group.MapPost("/{id:guid}/pause", (Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement) => Run(JobControl.PauseAsync, id, user, db, jobs, placement))
            .WithName("pauseJob").ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .WithSummary("Pause a job: a running one checkpoints and releases its slots (pausing, then paused); a queued one is paused at once");
        group.MapPost("/{id:guid}/resume", (Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement) => Run(JobControl.ResumeAsync, id, user, db, jobs, placement))
            .WithName("resumeJob").ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .WithSummary("Resume a paused job: it is queued again and continues from its checkpoint");
    }

    private static async Task<Results<Ok<JobDto>, NotFound, ProblemHttpResult>> Run(
        Func<Guid, ClaimsPrincipal, ServiceDb, JobStateMachine, PlacementTrigger, Task<JobControl.Outcome>> action,
        Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        if (await JobEndpoints.Find(db, user, id) is null) return TypedResults.NotFound();
        var (job, conflict) = await action(id, user, db, jobs, placement);
        return conflict != null ? Problems.Conflict(conflict) : TypedResults.Ok(job.ToDto());
    }
}
