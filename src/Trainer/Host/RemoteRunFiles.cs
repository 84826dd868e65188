using LongSeqService.Shared.Runs;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// A run on a host with its own disk (artifacts: remote): its folder is <c>&lt;state-dir&gt;/runs/&lt;job&gt;/</c>, its
/// inputs come from the <see cref="ArtifactCache"/> (datasets and model files hard-linked into <c>inputs/</c>, the
/// checkpoint to resume from copied into <c>output/</c>), and the run handed on to the trainer names only those local
/// paths, so the trainer runs exactly as on the shared store.
/// </summary>
public static class RemoteRunFiles
{
    /// <summary>Downloads what <paramref name="run"/>'s inputs name (what is not cached yet) and answers the same run with local paths.</summary>
    public static async Task<StartRunResponse> PrepareAsync(string stateDir, ArtifactCache cache, ArtifactCache.Fetch fetch, StartRunResponse run, CancellationToken ct)
    {
        var inputs = run.Inputs ?? throw new InvalidOperationException("not a remote run");
        var runDir = Path.Combine(stateDir, "runs", run.JobId.ToString());
        var inputDir = Path.Combine(runDir, "inputs");
        var outputDir = Path.Combine(runDir, "output");
        Directory.CreateDirectory(outputDir);
        async Task<string> Lay(InputFile f, string root, bool link)
        {
            var target = Below(root, f.Path);
            ArtifactCache.Place(await cache.GetAsync(f, fetch, ct), target, link);
            return target;
        }
        var datasets = new List<string>();
        foreach (var d in inputs.Datasets) datasets.Add(await Lay(d, Path.Combine(inputDir, "datasets"), link: true));
        List<string>? eval = null;
        if (inputs.EvalDatasets != null)
        {
            eval = [];
            foreach (var d in inputs.EvalDatasets) eval.Add(await Lay(d, Path.Combine(inputDir, "datasets"), link: true));
        }
        string? model = null;
        if (inputs.Model != null)
        {
            model = Path.Combine(inputDir, "model");
            foreach (var f in inputs.Model) await Lay(f, model, link: true);
        }
        // The uploaded checkpoint, unless this host still has it whole: trainer_state.json last, so a copy cut short is not "complete".
        if (inputs.Resume is { } resume && !File.Exists(Path.Combine(Below(outputDir, resume.Name), "trainer_state.json")))
        {
            var dir = Below(outputDir, resume.Name);
            foreach (var f in resume.Files.OrderBy(f => f.Path == "trainer_state.json")) await Lay(f, dir, link: false);
        }
        var names = string.Join(",", datasets);
        var spec = run.Spec with { ModelNameOrPath = model ?? run.Spec.ModelNameOrPath, Dataset = names, EvalDataset = eval != null ? string.Join(",", eval) : null };
        return run with { Spec = spec, DatasetPath = names, RunDir = runDir, OutputDir = outputDir };
    }

    /// <summary>The path <paramref name="relative"/> (from the API) names below <paramref name="root"/>; refused when it would leave it.</summary>
    public static string Below(string root, string relative)
    {
        var top = Path.GetFullPath(root);
        var full = Path.GetFullPath(Path.Combine(top, relative));
        if (Path.IsPathRooted(relative) || relative.Split('/', '\\').Any(p => p is ".." or "") || !full.StartsWith(top + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new InvalidDataException($"input path '{relative}' leaves its folder; refused");
        return full;
    }
}
