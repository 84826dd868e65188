using System.Text.Json;
using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Runs;

namespace LongSeqService.Trainer.Host;

/// <summary>Writes the trainer's run file for a run: the job spec as JSON (typed as the API parsed it; the
/// trainer reads it with the same parser), with the dataset as a file path, the job's output directory,
/// and the newest checkpoint to resume from when there is one.</summary>
public static partial class RunConfig
{
    [GeneratedRegex(@"^checkpoint-(\d+)$")] private static partial Regex CheckpointName();

    public static string Write(StartRunResponse run, string? resumeFrom)
    {
        var spec = JobSpecParser.ToJson(run.Spec with
        {
            Dataset = run.DatasetPath,
            OutputDir = run.OutputDir,
            OverwriteOutputDir = true,
            ResumeFromCheckpoint = resumeFrom,
        });
        Directory.CreateDirectory(run.RunDir);
        var path = Path.Combine(run.RunDir, "config.json");
        File.WriteAllText(path, spec.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>The complete checkpoint-&lt;step&gt; folder (it has trainer_state.json, which the trainer
    /// writes last) with the highest step, or null. A folder cut short by a dying host is skipped.</summary>
    public static string? NewestCheckpoint(string outputDir) => !Directory.Exists(outputDir) ? null :
        Directory.EnumerateDirectories(outputDir)
            .Select(d => (dir: d, m: CheckpointName().Match(Path.GetFileName(d))))
            .Where(x => x.m.Success && long.TryParse(x.m.Groups[1].Value, out _) && File.Exists(Path.Combine(x.dir, "trainer_state.json")))
            .OrderByDescending(x => long.Parse(x.m.Groups[1].Value))
            .Select(x => x.dir).FirstOrDefault();
}
