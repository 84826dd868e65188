using LongSeqService.Shared.Jobs;
using System.Text.Json.Nodes;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>What a finished run leaves in output_dir, and LoRA leaving the base model untouched.</summary>
public class TrainingOutputTests
{
    [Fact]
    public void FullSft_OutputDir_HoldsHuggingFaceFilesAndTheTrainedWeights()
    {
        using var scope = NewDisposeScope();
        using var dirs = new RunDirs();
        var output = dirs.Path("sft");

        var result = RunDirs.Train(RunDirs.Sft(output));

        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "trainer_log.jsonl", "trainer_state.json" })
            Assert.True(File.Exists(Path.Combine(output, f)), $"{f} missing");
        Assert.Equal([2], Checkpoints.List(output).Select(c => c.Step));                  // save_steps 2; the last step is the final model
        var loaded = ModelLoader.Load(output, ScalarType.Float32, new SdpaAttention()).Model;
        Assert.True(RunDirs.Flatten(loaded).AsSpan().SequenceEqual(result.FinalParameters), "model.safetensors is not the trained model");
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "trainer_state.json")))!;
        Assert.Equal(4, (int)state["global_step"]!);
        Assert.Equal(4, state["log_history"]!.AsArray().Count);
        loaded.Dispose();
    }

    /// <summary>A run started afresh in a used directory (a host restarting a run killed before its first
    /// checkpoint does this) replaces the earlier run's log, as LLaMA-Factory does: each step once.</summary>
    [Fact]
    public void FreshRun_InAUsedOutputDir_ReplacesTheEarlierLog()
    {
        using var scope = NewDisposeScope();
        using var dirs = new RunDirs();
        var output = dirs.Path("sft");
        RunDirs.Train(RunDirs.Sft(output) with { MaxSteps = 3 });

        RunDirs.Train(RunDirs.Sft(output) with { OverwriteOutputDir = true });

        var steps = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => (int)JsonNode.Parse(l)!["current_steps"]!);
        Assert.Equal([1, 2, 3, 4], steps);
    }

    /// <summary>label_tokens is what reached the loss: over one epoch of packed rows, one row a step (no micro-batch left over), every label of every row once.</summary>
    [Fact]
    public void PackedSft_LogLabelTokens_SumToTheRowsLabels()
    {
        using var scope = NewDisposeScope();
        using var dirs = new RunDirs();
        var output = dirs.Path("packed");
        var spec = RunDirs.Sft(output) with { Packing = true, CutoffLen = 96, PerDeviceTrainBatchSize = 1, GradientAccumulationSteps = 1, MaxSteps = -1, NumTrainEpochs = 1, SaveSteps = 1000 };
        var rows = RunPreparation.Prepare(spec, RepoPaths.Root).Train.Packed!;

        RunDirs.Train(spec);

        var logged = RunDirs.Log(output).Select(r => (long)r["label_tokens"]!).ToArray();
        Assert.All(logged, n => Assert.True(n > 0));
        Assert.Equal(rows.Sum(r => (long)r.LabelCount), logged.Sum());
    }

    [Fact]
    public void LoraSft_BaseWeightsBitIdentical_AdapterWrittenInPeftLayout()
    {
        using var scope = NewDisposeScope();
        using var dirs = new RunDirs();
        var output = dirs.Path("lora");
        var spec = RunDirs.Sft(output) with { FinetuningType = FinetuningType.Lora, LoraRank = 4, LoraTarget = "q_proj,v_proj,down_proj", LearningRate = 1e-2 };

        var result = RunDirs.Train(spec);

        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "adapter_config.json")));
        Assert.True(File.Exists(Path.Combine(output, "config.json")));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.False(File.Exists(Path.Combine(output, "model.safetensors")));               // the base model is not copied
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "adapter_config.json")))!;
        Assert.Equal("LORA", (string)config["peft_type"]!);
        Assert.Equal(4, (int)config["r"]!);
        Assert.Equal(["down_proj", "q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(t => (string)t!).Order());
        var names = Safetensors.LoadStateDict(Path.Combine(output, "adapter_model.safetensors")).Keys.ToList();
        Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", names);
        Assert.All(names, n => Assert.True(LoraAdapters.IsAdapterName(n), n));

        // The untouched built-in base plus the saved adapter is exactly the trained model: so the base
        // parameters did not change in training (bit for bit) and the adapter holds the trained values.
        var fresh = ModelLoader.Load("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention()).Model;
        var untouchedBase = fresh.BaseParameters().Select(p => p.Parameter.detach().clone()).ToList();
        LoraAdapters.Load(fresh, output);
        Assert.True(fresh.BaseParameters().Select(p => p.Parameter).Zip(untouchedBase).All(x => x.First.eq(x.Second).all().item<bool>()));
        Assert.True(RunDirs.Flatten(fresh).AsSpan().SequenceEqual(result.FinalParameters), "base + adapter differs from the trained model");
        var loraB = fresh.named_parameters().Where(p => p.name.Contains(".lora_B.")).ToList();
        Assert.NotEmpty(loraB);
        Assert.All(loraB, p => Assert.True(p.parameter.abs().max().item<float>() > 0, $"{p.name} never trained"));   // B starts at 0
        fresh.Dispose();
    }
}
