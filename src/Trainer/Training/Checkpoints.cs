using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>What a checkpoint restores besides the weights: the step (which fixes the data position and
/// the learning rate), the tokens trained so far and the random-number state.</summary>
public sealed record CheckpointState(int GlobalStep, long TrainedTokens);

/// <summary>
/// <c>checkpoint-&lt;step&gt;/</c>: the weights (model.safetensors, or the LoRA adapter), optimizer.safetensors
/// (AdamW moments, fp32 master weights, the torch RNG state) and trainer_state.json. Written to a temporary
/// folder and renamed into place, so an interrupted save never leaves a half-written checkpoint behind.
/// </summary>
public static class Checkpoints
{
    public const string Prefix = "checkpoint-";

    public static string Save(string outputDir, int step, long trainedTokens, double epoch, AdamW optimizer,
        Action<string> saveWeights, IEnumerable<JsonObject> logHistory, int? keepNewest)
    {
        var final = Path.Combine(outputDir, Prefix + step);
        var tmp = Path.Combine(outputDir, $".{Prefix}{step}.tmp");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        saveWeights(tmp);
        var state = optimizer.StateDict();
        using (var rng = torch.random.get_rng_state()) {
            state["rng_state"] = rng;
            Safetensors.SaveStateDict(Path.Combine(tmp, "optimizer.safetensors"), state);
        }
        WriteTrainerState(tmp, step, trainedTokens, epoch, optimizer.Step, logHistory);
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

    /// <summary>Restores optimizer and RNG state (the caller restores the weights) and returns the step to continue from.</summary>
    public static CheckpointState Load(string dir, AdamW optimizer)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "trainer_state.json")));
        var root = doc.RootElement;
        int step = root.GetProperty("global_step").GetInt32();
        var state = Safetensors.LoadStateDict(Path.Combine(dir, "optimizer.safetensors"));
        try
        {
            optimizer.LoadStateDict(state, root.GetProperty("optimizer_step").GetInt64());
            if (state.TryGetValue("rng_state", out var rng)) torch.random.set_rng_state(rng);
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
        return new CheckpointState(step, root.GetProperty("trained_tokens").GetInt64());
    }
}
