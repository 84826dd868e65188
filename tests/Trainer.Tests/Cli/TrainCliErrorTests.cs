using System.Text.Json.Nodes;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>
/// <c>trainer train CONFIG.yaml</c> refusing bad input, as a real child process: one <c>error:</c> line per
/// problem on stderr naming what is wrong, exit code 2, before training starts and with nothing written
/// (output_dir never created).
/// </summary>
public sealed class TrainCliErrorTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "lss-cli-" + Guid.NewGuid().ToString("N"));
    private string OutputDir => Path.Combine(_dir, "out");

    public TrainCliErrorTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A valid config (one short step of SFT) with some lines replaced or added; output_dir is ./out of the working folder.</summary>
    private string Config(string name, params string[] overrides)
    {
        var lines = new Dictionary<string, string>
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = "sft", ["template"] = "llama3",
            ["dataset"] = RepoPaths.Data("identity.json"), ["max_samples"] = "8", ["cutoff_len"] = "64",
            ["per_device_train_batch_size"] = "2", ["max_steps"] = "1", ["output_dir"] = "out",
        };
        foreach (var o in overrides)
        {
            var (k, v) = (o[..o.IndexOf(':')], o[(o.IndexOf(':') + 1)..].Trim());
            if (v == "-") lines.Remove(k); else lines[k] = v;
        }
        var path = Path.Combine(_dir, name);
        File.WriteAllLines(path, lines.Select(kv => $"{kv.Key}: {kv.Value}"));
        return path;
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private TrainerProcess.Result Train(params string[] args) => TrainerProcess.Run(_dir, ["train", .. args]);

    /// <summary>Exit 2, only <c>error:</c> lines (as many as expected), no training started, nothing written.</summary>
    private string[] AssertRefused(TrainerProcess.Result r, int problems = 1)
    {
        Assert.True(r.ExitCode == 2, r.ToString());
        var lines = r.StderrLines.Where(l => !l.StartsWith("warning:")).ToArray();
        Assert.True(lines.Length == problems, r.ToString());
        Assert.All(lines, l => Assert.StartsWith("error: ", l));
        Assert.DoesNotContain("training:", r.Stderr);
        Assert.False(Directory.Exists(OutputDir), "output_dir was created");
        return lines;
    }

    [Fact]
    public void UnknownKey_NamesItAndSuggestsClosest()
    {
        var r = Train(Config("c.yaml", "cutoff_len: -", "cutof_len: 64"));
        var line = AssertRefused(r)[0];
        Assert.Contains("cutof_len", line);
        Assert.Contains("'cutoff_len'", line);
    }

    [Fact]
    public void TwoUnknownKeys_OneLineEach()
    {
        var lines = AssertRefused(Train(Config("c.yaml", "cutof_len: 64", "lerning_rate: 1e-3")), problems: 2);
        Assert.Contains(lines, l => l.Contains("cutof_len") && l.Contains("'cutoff_len'"));
        Assert.Contains(lines, l => l.Contains("lerning_rate") && l.Contains("'learning_rate'"));
    }

    [Fact]
    public void MissingConfigFile_SaysNotFound()
    {
        var line = AssertRefused(Train("nope.yaml"))[0];
        Assert.Contains("nope.yaml", line);
        Assert.Contains("not found", line);
    }

    [Fact]
    public void MissingDatasetFile_NamesDatasetAndPath()
    {
        var line = AssertRefused(Train(Config("c.yaml", "dataset: missing.json")))[0];
        Assert.StartsWith("error: dataset:", line);
        Assert.Contains(Path.Combine(_dir, "missing.json"), line);           // relative to the config file
    }

    [Fact]
    public void MalformedJsonLine_NamesItsLineNumber()
    {
        Write("rows.jsonl",
            """
            {"instruction": "Hi", "input": "", "output": "Hello!"}
            {"instruction": "Who are you?", "input": "", "output": "A model."}
            {"instruction": "Broken", "input": "", output: "no quotes"}
            {"instruction": "Bye", "input": "", "output": "Bye!"}
            """);
        var line = AssertRefused(Train(Config("c.yaml", "dataset: rows.jsonl")))[0];
        Assert.StartsWith("error: dataset:", line);
        Assert.Contains("rows.jsonl", line);
        Assert.Contains("line 3", line);
    }

    /// <summary>A Llama model directory whose tokenizer lacks Llama 3's special tokens, trained with template llama3.</summary>
    [Fact]
    public void TemplateTheTokenizerCannotRender_NamesTemplateAndMissingToken()
    {
        var modelDir = Path.Combine(_dir, "model");
        using (var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention()))
            ModelSaver.Save(model, modelDir);
        var builtin = BuiltinTokenizer.EnsureCached();
        string[] llama3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(builtin, "tokenizer.json")))!;
        var added = tokenizer["added_tokens"]!.AsArray();
        foreach (var t in added.Where(t => llama3.Contains((string)t!["content"]!)).ToList()) added.Remove(t);
        File.WriteAllText(Path.Combine(modelDir, "tokenizer.json"), tokenizer.ToJsonString());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(builtin, "tokenizer_config.json")))!.AsObject();
        var decoder = config["added_tokens_decoder"]!.AsObject();
        foreach (var id in decoder.Where(kv => llama3.Contains((string)kv.Value!["content"]!)).Select(kv => kv.Key).ToList()) decoder.Remove(id);
        foreach (var key in new[] { "bos_token", "eos_token", "pad_token" })
            if (config[key] is JsonValue v && llama3.Contains((string)v!)) config[key] = null;
        File.WriteAllText(Path.Combine(modelDir, "tokenizer_config.json"), config.ToJsonString());

        var line = AssertRefused(Train(Config("c.yaml", $"model_name_or_path: {modelDir}")))[0];
        Assert.StartsWith("error: template:", line);
        Assert.Contains("llama3", line);
        Assert.Contains(llama3, t => line.Contains($"special token {t}"));
    }

    /// <summary>Prompts far longer than their answers: with 8 tokens no answer token fits in any example.</summary>
    [Fact]
    public void CutoffLenLeavingNoAnswerToken_NamesCutoffLen()
    {
        var prompt = string.Concat(Enumerable.Repeat("Please describe the weather in a great deal of detail. ", 6));
        Write("long.json", $$"""
            [{"instruction": "{{prompt}}", "input": "", "output": "Sunny."},
             {"instruction": "{{prompt}} Again.", "input": "", "output": "Rainy."}]
            """);
        var line = AssertRefused(Train(Config("c.yaml", "dataset: long.json", "cutoff_len: 8")))[0];
        Assert.StartsWith("error: cutoff_len:", line);
        Assert.Contains("8", line);
    }

    [Fact]
    public void ResumeFromDirectoryThatIsNoCheckpoint_NamesTheKey()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "not-a-checkpoint"));
        var line = AssertRefused(Train(Config("c.yaml", $"resume_from_checkpoint: {Path.Combine(_dir, "not-a-checkpoint")}")))[0];
        Assert.StartsWith("error: resume_from_checkpoint:", line);
        Assert.Contains("not-a-checkpoint", line);
    }

    [Fact]
    public void CommandLineOverride_BadValue_ReplacesFileValueAndIsRefused()
    {
        var line = AssertRefused(Train(Config("c.yaml"), "--template", "llama4"))[0];
        Assert.StartsWith("error: template:", line);
        Assert.Contains("llama4", line);
        var unknown = AssertRefused(Train(Config("c.yaml"), "--cutof-len", "64"))[0];
        Assert.Contains("'cutoff_len'", unknown);
    }

    /// <summary>The file says max_steps 50 and output_dir out; the command line wins on both.</summary>
    [Fact]
    public void CommandLineOverride_ReplacesFileValues()
    {
        var r = Train(Config("c.yaml", "max_steps: 50"), "--max_steps", "1", "--output-dir", "other", "--logging_steps", "1");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(Directory.Exists(OutputDir));
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "other", "trainer_state.json")))!;
        Assert.Equal(1, (int)state["global_step"]!);
        var log = File.ReadAllLines(Path.Combine(_dir, "other", "trainer_log.jsonl"));
        Assert.Single(log);
        Assert.Equal(1, (int)JsonNode.Parse(log[0])!["total_steps"]!);
    }
}
