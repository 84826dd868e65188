using System.Text.Json.Nodes;
using LongSeqService.Trainer.Tests.Data;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>
/// LLaMA-Factory's own example configs (tests/Trainer.Tests/LlamaFactoryExamples, changed only in
/// model_name_or_path and output_dir) trained by the CLI for 2 steps on a Qwen3-shaped directory with
/// random weights and Qwen3's real tokenizer, from a folder laid out like LLaMA-Factory's checkout
/// (the config beside data/ with dataset_info.json).
/// </summary>
[Trait("Category", "Slow")]
public sealed class LlamaFactoryExampleTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "lss-lf-" + Guid.NewGuid().ToString("N"));

    public LlamaFactoryExampleTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "data"));
        foreach (var f in Directory.GetFiles(Path.Combine(RepoPaths.Root, "data")))
            File.Copy(f, Path.Combine(_dir, "data", Path.GetFileName(f)));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Copies the example beside data/, writes the model it names, trains 2 steps; returns the output folder.</summary>
    private string Train(string example, string modelType, params string[] extra)
    {
        var config = Path.Combine(_dir, example);
        File.Copy(Path.Combine(RepoPaths.Root, "tests", "Trainer.Tests", "LlamaFactoryExamples", example), config);
        HfModelFixture.WriteQwen3Shaped(Path.Combine(_dir, "qwen3-tiny"), modelType);
        var r = TrainerProcess.Run(_dir, TimeSpan.FromMinutes(15), ["train", config, "--max_steps", "2", .. extra]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var output = Path.Combine(_dir, File.ReadLines(config).Single(l => l.StartsWith("output_dir:"))["output_dir:".Length..].Trim());
        var log = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(2, (int)log[^1]["current_steps"]!);
        Assert.All(log, o => Assert.True(double.IsFinite((double)o["loss"]!) && (double)o["loss"]! > 0, o.ToJsonString()));
        return output;
    }

    [Theory(Skip = "waits on the lead's merge: model_type qwen3 and template qwen3_nothink (architectures helper), deepspeed as a known key (spec helper)")]
    [InlineData("qwen3_lora_sft.yaml", "adapter_model.safetensors")]
    [InlineData("qwen3_lora_dpo.yaml", "adapter_model.safetensors")]
    [InlineData("qwen3_lora_pretrain.yaml", "adapter_model.safetensors")]
    [InlineData("qwen3_full_sft.yaml", "model.safetensors")]
    public void Example_AsPublished_TrainsTwoSteps(string example, string weights)
    {
        var output = Train(example, "qwen3");
        Assert.True(File.Exists(Path.Combine(output, weights)), $"{weights} missing in {output}");
    }

    /// <summary>Today's part of the same path: the data side of the examples (dataset names from dataset_info.json,
    /// identity,alpaca_en_demo concatenated, dpo_en_demo as ranking data, c4_demo as pt text, max_samples, cutoff_len)
    /// and their copied keys, on the same shape typed as qwen2 with the qwen template.</summary>
    [Theory]
    [InlineData("qwen3_lora_sft.yaml")]
    [InlineData("qwen3_lora_dpo.yaml")]
    [InlineData("qwen3_lora_pretrain.yaml")]
    public void Example_OnQwen2TypedShape_TrainsTwoSteps(string example)
    {
        // fp32 here: with the examples' bf16 the three runs did not finish 2 steps within 8 minutes on the shared 2-core machine (load ~50).
        var output = Train(example, "qwen2", "--template", "qwen", "--bf16", "false");
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
    }
}
