using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer train [CONFIG.yaml | CONFIG.json] [--key value …]</c>, as <c>llamafactory-cli train</c> and
/// 360-LLaMA-Factory's <c>src/train.py</c> take it: a YAML or JSON config whose keys any flag overrides, or
/// flags only (<c>trainer train --stage sft --model_name_or_path … --dataset … --do_train --bf16</c>).
/// Relative paths (dataset, deepspeed) are resolved against the config file's folder, or the working
/// folder without one. Bad input is refused before anything runs or is written.
/// </summary>
public static class TrainCommand
{
    public const string Usage = "trainer train [CONFIG.yaml|CONFIG.json] [--key value ...]   (keys: see the job spec reference in the README)";

    public static int Run(string[] args)
    {
        var (spec, baseDir, warnings) = Parse(args);
        foreach (var w in warnings) Console.Error.WriteLine("warning: " + w);

        var prep = RunPreparation.Prepare(spec, baseDir);
        foreach (var n in prep.Notes) Console.Error.WriteLine("note: " + n);
        Console.Error.WriteLine($"{prep.Spec.Stage.Wire()} on {prep.Spec.ModelNameOrPath} ({prep.Spec.FinetuningType.Wire()}): {prep.TrainCount} training examples" +
            (prep.Val.Count > 0 ? $", {prep.Val.Count} validation" : "") +
            $"; sequence_parallel_size {prep.Spec.SequenceParallelSize} ({prep.Spec.SequenceParallelMode.Wire()}), data_parallel_size {prep.Spec.DataParallelSize}");

        using (var progress = new ConsoleProgress())
            new TrainingRun(prep, progress).Execute();
        if (PauseRequest.HonoredStep() is { } step)
        {
            Console.Error.WriteLine($"paused after step {step}: {Path.Combine(prep.OutputDir ?? "", $"checkpoint-{step}")} (resume_from_checkpoint continues from it)");
            return Shared.Runs.PauseProtocol.ExitCode;
        }
        Console.Error.WriteLine($"done: {prep.OutputDir}");
        return 0;
    }

    /// <summary>The spec of a command line (config file, then flags; later wins), the folder relative paths
    /// are resolved against, and one warning per ignored LLaMA-Factory key. Reads nothing but the config
    /// and a deepspeed file.</summary>
    public static (JobSpec Spec, string BaseDir, List<string> Warnings) Parse(string[] args)
    {
        var cli = CliArgs.Parse(args, JobSpecParser.FlagKeys);
        if (cli.Positional.Count > 1) throw new CliException($"one config file at most, got {cli.Positional.Count} ({string.Join(", ", cli.Positional)}); usage: {Usage}");
        string baseDir = Directory.GetCurrentDirectory();
        var pairs = new List<KeyValuePair<string, string?>>();
        JsonObject? json = null;
        if (cli.Positional.Count == 1)
        {
            var configPath = Path.GetFullPath(cli.Positional[0]);
            if (!File.Exists(configPath)) throw new CliException($"config file '{cli.Positional[0]}' not found");
            baseDir = Path.GetDirectoryName(configPath)!;
            var text = File.ReadAllText(configPath);
            if (configPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) json = ReadJson(text, Path.GetFileName(configPath));
            else pairs = JobSpecParser.ReadYaml(text, Path.GetFileName(configPath));
        }
        if (json is null && pairs.Count == 0 && cli.Options.Count == 0) throw new CliException("usage: " + Usage);
        if (json != null)
            foreach (var (k, v) in cli.Options) json[k] = v; // flags override the file; the parser types text and JSON alike
        else pairs.AddRange(cli.Options);

        var warnings = new List<string>();
        string ReadFile(string path) => File.ReadAllText(Path.GetFullPath(path, baseDir));
        var spec = json != null ? JobSpecParser.FromJson(json, warnings, readFile: ReadFile) : JobSpecParser.FromPairs(pairs, warnings, ReadFile);
        return (spec, baseDir, warnings);
    }

    private static JsonObject ReadJson(string text, string name)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                   ?? throw new JobSpecException([new SpecError(name, "expected a JSON object of job-spec keys")]);
        }
        catch (JsonException e) { throw new JobSpecException([new SpecError(name, $"line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message})")]); }
    }
}
