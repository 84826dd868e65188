namespace LongSeqService.Shared.Runs;

/// <summary>
/// The Hangfire job a trainer host executes: run attempt <paramref name="attempt"/> of a job. The
/// scheduler enqueues it on the host's own queue (host-&lt;id&gt;); the host's Hangfire server resolves
/// this interface to its executor. It lives here because both processes must name the same type.
/// Safe to run twice: the API starts a run only while the job is scheduled on this host with this attempt.
/// </summary>
public interface IRunExecutor
{
    Task ExecuteAsync(Guid jobId, int attempt, CancellationToken cancellationToken);
}
