using LongSeqService.Api.Infrastructure;

namespace LongSeqService.Api.Jobs;

/// <summary>Where a job's files live in the artifact store: jobs/&lt;id&gt;/ holds the trainer config and
/// logs of each attempt, jobs/&lt;id&gt;/output the model, trainer_log.jsonl and checkpoint-&lt;step&gt;/.
/// The same folder across attempts, so a requeued run resumes from the checkpoints already there.</summary>
public static class JobPaths
{
    public static string RunDir(LongSeqOptions o, Guid jobId) => o.DataPath("jobs", jobId.ToString());
    public static string OutputDir(LongSeqOptions o, Guid jobId) => Path.Combine(RunDir(o, jobId), "output");
}
