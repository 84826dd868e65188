using Hangfire;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Runs;

namespace LongSeqService.Scheduler.Placement;

/// <summary>Hands a bound run to its host: a Hangfire job on the host's own queue, which only that
/// host's Hangfire server serves. Enqueueing twice is harmless (the executor re-checks the attempt).</summary>
public sealed class RunDispatcher(IBackgroundJobClient jobs)
{
    public string Dispatch(Guid jobId, int attempt, int hostId) =>
        jobs.Enqueue<IRunExecutor>(HostQueues.For(hostId), x => x.ExecuteAsync(jobId, attempt, CancellationToken.None));
}
