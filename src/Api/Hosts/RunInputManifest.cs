using System.Text.Json;
using LongSeqService.Api.Jobs;
using LongSeqService.Shared.Runs;

namespace LongSeqService.Api.Hosts;

/// <summary>
/// The inputs of one attempt of a run on a host with its own disk, by content hash: what the start answer lists
/// (<see cref="RunInputs"/>) and what that host may then download. The manifest (sha256 → file on the store) is
/// written under the job's folder when the attempt starts; a download is served only for a hash in the manifest of
/// the attempt the job is bound to now, on the host it is bound to — so a host key reads the inputs of its own
/// current runs and nothing else (no other tenant's dataset, no server path).
/// </summary>
public static class RunInputManifest
{
    private static string FileOf(string runDir, int attempt) => Path.Combine(runDir, "inputs", $"attempt-{attempt}.json");

    /// <summary>Lists <paramref name="datasets"/>, <paramref name="evalDatasets"/> (files on the store), the model folder's
    /// files (when <paramref name="modelDir"/> is one) and the newest complete checkpoint in <paramref name="outputDir"/>,
    /// hashes them, and writes the attempt's manifest.</summary>
    public static async Task<RunInputs> WriteAsync(string runDir, int attempt, IReadOnlyList<string> datasets, IReadOnlyList<string>? evalDatasets,
        string? modelDir, string outputDir, ContentHashes hashes, CancellationToken ct)
    {
        var manifest = new Dictionary<string, string>();
        async Task<InputFile> Add(string name, string full)
        {
            var sha = await hashes.Sha256Async(full, ct);
            manifest[sha] = full;
            return new InputFile(name, sha, new FileInfo(full).Length);
        }
        async Task<List<InputFile>> Folder(string dir, Func<string, bool> keep)
        {
            var files = new List<InputFile>();
            foreach (var a in JobFiles.List(dir).Where(a => keep(a.Path))) files.Add(await Add(a.Path, Path.Combine(dir, a.Path)));
            return files;
        }
        var train = new List<InputFile>();
        foreach (var d in datasets) train.Add(await Add(Path.GetFileName(d), d));
        List<InputFile>? eval = null;
        if (evalDatasets != null)
        {
            eval = [];
            foreach (var d in evalDatasets) eval.Add(await Add(Path.GetFileName(d), d));
        }
        // A job's output folder is a model with its checkpoints beside it: the model is the top-level files.
        var model = modelDir != null && Directory.Exists(modelDir) ? await Folder(modelDir, p => !p.StartsWith("checkpoint-", StringComparison.Ordinal)) : null;
        ResumeCheckpoint? resume = null;
        if (JobFiles.Checkpoints(outputDir).OrderByDescending(c => c.Step)
                .FirstOrDefault(c => File.Exists(Path.Combine(outputDir, c.Path, "trainer_state.json"))) is { } newest)
            resume = new ResumeCheckpoint(newest.Path, await Folder(Path.Combine(outputDir, newest.Path), _ => true));

        var path = FileOf(runDir, attempt);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        await File.WriteAllTextAsync(temp, JsonSerializer.Serialize(manifest), ct);
        File.Move(temp, path, overwrite: true);
        return new RunInputs(train, eval, model, resume);
    }

    /// <summary>The store's file with content <paramref name="sha256"/> among the inputs of that attempt, or null.</summary>
    public static string? Find(string runDir, int attempt, string sha256)
    {
        var path = FileOf(runDir, attempt);
        if (!File.Exists(path)) return null;
        var manifest = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(path))!;
        return manifest.TryGetValue(sha256, out var file) && File.Exists(file) ? file : null;
    }
}
