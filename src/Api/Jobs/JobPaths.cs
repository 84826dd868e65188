using LongSeqService.Api.Infrastructure;

namespace LongSeqService.Api.Jobs;

/// <summary>Where a job's files live in the artifact store: jobs/&lt;id&gt;/ holds the trainer config and
/// logs of each attempt, jobs/&lt;id&gt;/output the model, trainer_log.jsonl and checkpoint-&lt;step&gt;/.
/// The same folder across attempts, so a requeued run resumes from the checkpoints already there.</summary>
public static class JobPaths
{
    public static string RunDir(LongSeqOptions o, Guid jobId) => o.DataPath("jobs", jobId.ToString());
    public static string OutputDir(LongSeqOptions o, Guid jobId) => Path.Combine(RunDir(o, jobId), "output");

    /// <summary>A path in the store as its name relative to the data directory (jobs/&lt;id&gt;/output): what a host with its own disk is told.</summary>
    public static string Relative(LongSeqOptions o, string path) => Path.GetRelativePath(o.DataPath(), path).Replace('\\', '/');

    /// <summary>
    /// <paramref name="text"/> (a trainer's error line, a loader's message) with the server's data directory
    /// taken out: <c>/srv/longseq/jobs/&lt;id&gt;/output/checkpoint-5</c> reads <c>jobs/&lt;id&gt;/output/checkpoint-5</c>.
    /// Tenants see what went wrong in their own terms, never where the service keeps its files.
    /// </summary>
    public static string? Scrub(LongSeqOptions o, string? text)
    {
        if (string.IsNullOrEmpty(text)) return text;
        var root = Path.TrimEndingDirectorySeparator(o.DataPath());
        return text.Replace(root + Path.DirectorySeparatorChar, "", StringComparison.Ordinal).Replace(root, ".", StringComparison.Ordinal);
    }
}
