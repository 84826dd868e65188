using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>What a checkpoint restores besides the weights: the step (which fixes the data position and
/// the learning rate), the tokens trained so far and the random-number state.</summary>
public sealed record CheckpointState(int GlobalStep, long TrainedTokens);

/// <summary>
/// <c>checkpoint-&lt;step&gt;/</c>: the weights (model.safetensors, or the LoRA adapter), optimizer.safetensors
/// (AdamW moments, fp32 master weights, the torch RNG state) — or, with zero_stage ≥ 1, one
/// optimizer-{start}-{end}.safetensors per rank and rng_state.safetensors — and trainer_state.json. Written to a temporary
/// folder and renamed into place, so an interrupted save never leaves a half-written checkpoint behind.
/// </summary>
public static class Checkpoints
{
    public const string Prefix = "checkpoint-";

    public static string Save(string outputDir, int step, long trainedTokens, double epoch, AdamW optimizer,
        Action<string> saveWeights, IEnumerable<JsonObject> logHistory, int? keepNewest)
    {
        var tmp = Begin(outputDir, step, saveWeights);
        WriteOptimizer(tmp, OptimizerFile, optimizer, rngFile: null);
        return Commit(outputDir, step, tmp, trainedTokens, epoch, optimizer.Step, logHistory, keepNewest);
    }

    /// <summary>
    /// The checkpoint of a run's whole world (every rank calls it): the main rank writes the weights (the
    /// consolidated model.safetensors: every rank holds all weights) and trainer_state.json; the optimizer
    /// state is written by whoever holds it — the main rank alone when it is replicated (optimizer.safetensors),
    /// each rank its own partition otherwise (optimizer-{start}-{end}.safetensors, keyed by parameter name and
    /// offset so any world size can re-partition it; the RNG state then goes to rng_state.safetensors).
    /// Returns the checkpoint's path.
    /// </summary>
    public static string Save(ICollectives world, IModelStates states, string outputDir, int step, long trainedTokens, double epoch,
        Action<string> saveWeights, IEnumerable<JsonObject> logHistory, int? keepNewest)
    {
        bool main = world.Rank == 0;
        var tmp = main ? Begin(outputDir, step, saveWeights) : TempDir(outputDir, step);
        world.Barrier();                                    // the folder exists before anyone writes into it
        if (states.Partitioned)
        {
            // A rank on another host (mpi_hosts) does not see the folder: it writes its part locally and sends it to rank 0.
            var away = PartitionRelay.Away(world, tmp);
            if (away.Contains(world.Rank))
            {
                var local = Directory.CreateTempSubdirectory("longseq-partition-").FullName;
                try
                {
                    WriteOptimizer(local, PartitionFile(states.Range), states.Optimizer, rngFile: null);
                    PartitionRelay.Send(world, Path.Combine(local, PartitionFile(states.Range)));
                }
                finally { Directory.Delete(local, recursive: true); }
            }
            else WriteOptimizer(tmp, PartitionFile(states.Range), states.Optimizer, rngFile: main ? RngFile : null);
            if (main) foreach (var rank in away) PartitionRelay.Receive(world, rank, tmp);
        }
        else if (main)
            WriteOptimizer(tmp, OptimizerFile, states.Optimizer, rngFile: null);
        world.Barrier();                                    // every part is written before the folder is renamed into place
        return main ? Commit(outputDir, step, tmp, trainedTokens, epoch, states.Step, logHistory, keepNewest) : Path.Combine(outputDir, Prefix + step);
    }

    private const string OptimizerFile = "optimizer.safetensors", RngFile = "rng_state.safetensors";
    private static readonly Regex PartitionName = new(@"^optimizer-(\d+)-(\d+)\.safetensors$");

    private static string PartitionFile((long Start, long End) range) => $"optimizer-{range.Start}-{range.End}.safetensors";

    private static string TempDir(string outputDir, int step) => Path.Combine(outputDir, $".{Prefix}{step}.tmp");

    private static string Begin(string outputDir, int step, Action<string> saveWeights)
    {
        RunFence.BeforeWrite();
        var tmp = TempDir(outputDir, step);
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        saveWeights(tmp);
        return tmp;
    }

    /// <summary>The optimizer's tensors, and the torch RNG state: in the same file, or in its own when the state is in parts.</summary>
    private static void WriteOptimizer(string dir, string file, AdamW optimizer, string? rngFile)
    {
        var state = optimizer.StateDict();
        using var rng = torch.random.get_rng_state();
        if (file == OptimizerFile) state["rng_state"] = rng;
        else if (rngFile != null) Safetensors.SaveStateDict(Path.Combine(dir, rngFile), new Dictionary<string, Tensor> { ["rng_state"] = rng });
        Safetensors.SaveStateDict(Path.Combine(dir, file), state);
    }

    private static string Commit(string outputDir, int step, string tmp, long trainedTokens, double epoch, long optimizerStep,
        IEnumerable<JsonObject> logHistory, int? keepNewest)
    {
        var final = Path.Combine(outputDir, Prefix + step);
        RunFence.BeforeWrite();
        WriteTrainerState(tmp, step, trainedTokens, epoch, optimizerStep, logHistory);
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(tmp, final);
        if (keepNewest is { } keep)
            foreach (var old in List(outputDir).SkipLast(keep)) Directory.Delete(old.Path, true);
        return final;
    }

    public static void WriteTrainerState(string dir, int step, long trainedTokens, double epoch, long optimizerStep, IEnumerable<JsonObject> logHistory)
    {
        var o = new JsonObject
        {
            ["global_step"] = step,
            ["epoch"] = epoch,
            ["optimizer_step"] = optimizerStep,
            ["trained_tokens"] = trainedTokens,
            ["log_history"] = new JsonArray(logHistory.Select(h => (JsonNode)h.DeepClone()).ToArray()),
        };
        File.WriteAllText(Path.Combine(dir, "trainer_state.json"), o.ToJsonString(TrainerLog.Indented));
    }

    /// <summary>Checkpoints in <paramref name="outputDir"/>, oldest first.</summary>
    public static List<(int Step, string Path)> List(string outputDir) =>
        !Directory.Exists(outputDir) ? [] :
        Directory.GetDirectories(outputDir, Prefix + "*")
            .Select(d => (ok: int.TryParse(Path.GetFileName(d)[Prefix.Length..], out var s), s, d))
            .Where(x => x.ok && File.Exists(Path.Combine(x.d, "trainer_state.json")))
            .OrderBy(x => x.s).Select(x => (x.s, x.d)).ToList();

    /// <summary>Resolves <c>resume_from_checkpoint</c>: a directory, or "latest" for the newest in output_dir (null if none).</summary>
    public static string? Resolve(string? resume, string outputDir)
    {
        if (resume is null) return null;
        if (resume == "latest") return List(outputDir).Select(c => c.Path).LastOrDefault();
        if (!File.Exists(Path.Combine(resume, "trainer_state.json")))
            throw new FileNotFoundException($"resume_from_checkpoint: '{resume}' is not a checkpoint directory (it has no trainer_state.json)");
        return resume;
    }

    /// <summary>Restores optimizer and RNG state (the caller restores the weights) and returns the step to continue from.
    /// The optimizer takes its slots from whichever optimizer files of the checkpoint overlap <paramref name="range"/>
    /// (the flat elements it holds; all of them when null) — whatever partitioning wrote them.</summary>
    public static CheckpointState Load(string dir, AdamW optimizer, (long Start, long End)? range = null)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "trainer_state.json")));
        var root = doc.RootElement;
        int step = root.GetProperty("global_step").GetInt32();
        var files = Directory.GetFiles(dir, "optimizer*.safetensors").Where(f => Overlaps(Path.GetFileName(f), range)).Order().ToList();
        bool holdsNothing = range is { } r0 && r0.End <= r0.Start;
        if (files.Count == 0 && !holdsNothing) throw new InvalidDataException($"{dir}: no optimizer state (optimizer.safetensors or optimizer-<start>-<end>.safetensors)");
        if (File.Exists(Path.Combine(dir, RngFile))) files.Add(Path.Combine(dir, RngFile));
        var state = new Dictionary<string, Tensor>();
        try
        {
            foreach (var f in files)
                foreach (var (k, t) in Safetensors.LoadStateDict(f)) state[k] = t;
            optimizer.LoadStateDict(state, root.GetProperty("optimizer_step").GetInt64());
            if (state.TryGetValue("rng_state", out var rng)) torch.random.set_rng_state(rng);
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
        return new CheckpointState(step, root.GetProperty("trained_tokens").GetInt64());
    }

    /// <summary>Whether an optimizer file may hold state for flat elements <paramref name="range"/> (a whole-state file always may).</summary>
    private static bool Overlaps(string file, (long Start, long End)? range)
    {
        if (file == OptimizerFile) return true;
        var m = PartitionName.Match(file);
        if (!m.Success) return false;
        return range is not { } r || (long.Parse(m.Groups[1].Value) < r.End && long.Parse(m.Groups[2].Value) > r.Start);
    }
}
