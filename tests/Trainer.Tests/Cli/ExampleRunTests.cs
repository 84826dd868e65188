using System.Text.Json.Nodes;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>
/// The example configs trained end to end by the CLI (a child process), with output_dir overridden to a
/// temporary folder: the model learns (issue 2's acceptance figures), the log has every field, and the
/// output directory is a loadable Hugging Face model.
/// </summary>
[Trait("Category", "Slow")]
public sealed class ExampleRunTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "lss-example-" + Guid.NewGuid().ToString("N"));

    public ExampleRunTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string[] CommonFields =
        ["current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time", "remaining_time", "tokens_per_sec"];

    private static readonly string[] DpoFields = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"];

    private List<JsonObject> Train(string example, string output)
    {
        var r = TrainerProcess.Run(_dir, TimeSpan.FromMinutes(8), "train", Path.Combine(RepoPaths.Root, "examples", example), "--output_dir", output);
        Assert.True(r.ExitCode == 0, r.ToString());
        var log = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.NotEmpty(log);
        return log;
    }

    private static void AssertFields(List<JsonObject> log, IEnumerable<string> fields)
    {
        foreach (var o in log)
            foreach (var f in fields)
                Assert.True(o[f] is not null, $"step {o["current_steps"]}: '{f}' missing or null in {o.ToJsonString()}");
        Assert.Equal(log.Select(o => (int)o["current_steps"]!), log.Select(o => (int)o["current_steps"]!).Order());
        Assert.Equal(100.0, (double)log[^1]["percentage"]!);
    }

    /// <summary>config.json, model.safetensors, tokenizer.json, trainer_state.json, and the weights load back and run.</summary>
    private static void AssertLoadableModelDir(string output, int steps)
    {
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "trainer_state.json" })
            Assert.True(File.Exists(Path.Combine(output, f)), $"{f} missing");
        Assert.Equal(steps, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(output, "trainer_state.json")))!["global_step"]!);
        using var scope = NewDisposeScope();
        var (model, _, tokenizerDir) = ModelLoader.Load(output, ScalarType.Float32, new SdpaAttention());
        Assert.Equal(output, tokenizerDir);
        using var noGrad = no_grad();
        var logits = model.call(arange(8, dtype: ScalarType.Int64).unsqueeze(0), arange(8, dtype: ScalarType.Int64).unsqueeze(0));
        Assert.True(logits.isfinite().all().item<bool>());
        model.Dispose();
    }

    /// <summary>60 optimizer steps of SFT on identity.json bring the logged loss below half of its first value.</summary>
    [Fact]
    public void SftExample_LossBelowHalfOfFirst_LogAndOutputComplete()
    {
        var output = Path.Combine(_dir, "sft");
        var log = Train("sft_tiny_llama.yaml", output);

        AssertFields(log, CommonFields);
        Assert.Equal(60, (int)log[^1]["current_steps"]!);
        double first = (double)log[0]["loss"]!, last = (double)log[^1]["loss"]!;
        Assert.True(last < first / 2, $"loss {first} → {last}");
        AssertLoadableModelDir(output, 60);
        Assert.True(Directory.Exists(Path.Combine(output, "checkpoint-30")));
    }

    /// <summary>DPO on dpo_en_demo.json: the last logged accuracy above 0.5 and loss below ln 2.</summary>
    [Fact]
    public void DpoExample_AccuracyAboveHalfLossBelowLn2_LogAndOutputComplete()
    {
        var output = Path.Combine(_dir, "dpo");
        var log = Train("dpo_tiny_llama.yaml", output);

        AssertFields(log, [.. CommonFields, .. DpoFields]);
        Assert.Equal(Math.Log(2), (double)log[0]["loss"]!, 5);                 // step 1: policy = reference
        double accuracy = (double)log[^1]["rewards/accuracies"]!, loss = (double)log[^1]["loss"]!;
        Assert.True(accuracy > 0.5, $"rewards/accuracies {accuracy}");
        Assert.True(loss < Math.Log(2), $"loss {loss}");
        AssertLoadableModelDir(output, (int)log[^1]["total_steps"]!);
    }

    /// <summary>360-LLaMA-Factory's SFT command as published (packing, 100k cutoff, ZeRO-3 offload config, bf16,
    /// checkpointing), paths changed and SP 8 → 2: it trains every packed sequence of 4 epochs and writes a model.
    /// On all of identity.json that is 4 steps of 18,168 tokens in bf16 (4.7 min here, bf16 matmuls are slow on
    /// this CPU); the test adds max_samples 16 to keep the slow suite short.</summary>
    [Fact]
    public void Sft360ExampleCommand_PackingSequenceParallel2_TrainsAndWritesAModel()
    {
        var output = Path.Combine(_dir, "sft-360");
        var r = TrainerProcess.Run(_dir, TimeSpan.FromMinutes(8), ["train", .. Example360.SftCommand(_dir, RepoPaths.Data("identity.json"), output, sequenceParallelSize: 2), "--max_samples", "16"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var log = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        AssertFields(log, CommonFields);
        Assert.Equal(4.0, (double)log[^1]["epoch"]!, 6);
        AssertLoadableModelDir(output, (int)log[^1]["total_steps"]!);
    }
}
