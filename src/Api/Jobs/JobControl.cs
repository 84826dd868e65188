using System.Security.Claims;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Api.Jobs;

/// <summary>
/// What a tenant can do to its job — cancel, pause, resume — shared by /v1/jobs and /v1/fine_tuning/jobs. Each is a
/// list of guarded moves tried in order (<see cref="JobStateMachine.TryMoveFirstAsync"/>): of two concurrent requests
/// exactly one wins, and a request racing placement or the host finds the state it actually is in.
/// Returns the job after the move, or the reason nothing moved (a 409).
/// </summary>
public static class JobControl
{
    public sealed record Outcome(Job Job, string? Conflict);

    public static async Task<Outcome> CancelAsync(Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        // A cancel racing placement either cancels the queued job (binding then finds it gone) or finds it scheduled and stops it.
        var won = await jobs.TryMoveFirstAsync(id, [
            (JobStates.Queued, JobStates.Cancelled), (JobStates.Validating, JobStates.Cancelled), (JobStates.Paused, JobStates.Cancelled),
            (JobStates.Scheduled, JobStates.Cancelling), (JobStates.Running, JobStates.Cancelling), (JobStates.Pausing, JobStates.Cancelling)], $"cancelled by {user.Identity!.Name}");
        var job = (await JobEndpoints.Find(db, user, id))!;
        if (won == null) return new(job, $"job {id} is {job.State}; only a queued, scheduled, running or paused job can be cancelled");
        if (job.State == JobStates.Cancelled) placement.Request();
        return new(job, null);
    }

    /// <summary>A running job goes through pausing (its host makes the trainer checkpoint and exit, then reports it
    /// paused); one not started yet is paused at once, giving its slots back.</summary>
    public static async Task<Outcome> PauseAsync(Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        var reason = $"paused by {user.Identity!.Name}";
        var won = await jobs.TryMoveFirstAsync(id, [(JobStates.Queued, JobStates.Paused), (JobStates.Running, JobStates.Pausing)], reason);
        // Scheduled: its host may be starting it; the start then finds it paused and is refused.
        if (won == null && await jobs.TryMoveAsync(id, JobStates.Scheduled, JobStates.Paused, reason + " before its run started", s => s.SetProperty(j => j.HostId, (int?)null)))
        {
            won = JobStates.Scheduled;
            placement.Request();
        }
        var job = (await JobEndpoints.Find(db, user, id))!;
        return won == null ? new(job, $"job {id} is {job.State}; only a queued, scheduled or running job can be paused") : new(job, null);
    }

    /// <summary>Back to the queue; placed again, it continues from its newest checkpoint (the pause's own).</summary>
    public static async Task<Outcome> ResumeAsync(Guid id, ClaimsPrincipal user, ServiceDb db, JobStateMachine jobs, PlacementTrigger placement)
    {
        bool won = await jobs.TryMoveAsync(id, JobStates.Paused, JobStates.Queued, $"resumed by {user.Identity!.Name}; continues from its newest checkpoint");
        var job = (await JobEndpoints.Find(db, user, id))!;
        if (!won)
            return new(job, job.State == JobStates.Pausing
                ? $"job {id} is still pausing (its trainer is saving a checkpoint); resume it once it is paused"
                : $"job {id} is {job.State}; only a paused job can be resumed");
        placement.Request();
        return new(job, null);
    }
}
