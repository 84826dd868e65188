using LongSeqService.Shared.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;
using AdamW = LongSeqService.Trainer.Training.AdamW;

namespace LongSeqService.Trainer.Tests.Training;

public class CheckpointsTests
{
    private static Tensor Logits(CausalLM model)
    {
        using var noGrad = no_grad();
        using var g = new Generator(21, CPU);
        var ids = randint(0, BuiltinModels.VocabSize, [2, 24], dtype: ScalarType.Int64, generator: g);
        return model.call(ids, arange(24, dtype: ScalarType.Int64).unsqueeze(0).expand(2, 24).contiguous());
    }

    /// <summary>A tiny-llama that has taken a few optimizer steps (weights and AdamW moments away from their initial values).</summary>
    private static (CausalLM Model, AdamW Optimizer) Trained(ScalarType dtype)
    {
        var model = ModelLoader.Load("builtin:tiny-llama", dtype, new SdpaAttention()).Model;
        var adam = new AdamW(model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), 0.9, 0.999, 1e-8, 0.01);
        using var g = new Generator(5, CPU);
        for (int s = 0; s < 2; s++)
        {
            using var scope = NewDisposeScope();
            var ids = randint(0, BuiltinModels.VocabSize, [1, 16], dtype: ScalarType.Int64, generator: g);
            var logits = model.call(ids, arange(16, dtype: ScalarType.Int64).unsqueeze(0));
            Losses.SftLossSum(logits.narrow(1, 0, 15), ids.narrow(1, 1, 15)).backward();   // next-token loss
            adam.Update(1e-2);
            foreach (var p in model.parameters()) p.grad = null;
        }
        return (model, adam);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Save_ThenLoadIntoFreshModel_BitIdenticalLogitsAndOptimizerState(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var dirs = new RunDirs();
        var output = dirs.Path("out");
        Directory.CreateDirectory(output);
        var (model, adam) = Trained(dtype);
        var factory = new ModelFactory(new JobSpec { ModelNameOrPath = "builtin:tiny-llama" }, dtype, TokenLengths.TokenizerDir("builtin:tiny-llama"));

        var path = Checkpoints.Save(output, step: 2, trainedTokens: 32, epoch: 0.5, adam, dir => factory.SaveCheckpoint(model, dir), [], keepNewest: null);

        Assert.Equal(Path.Combine(output, "checkpoint-2"), path);
        // The tokenizer too, so a checkpoint loads on its own (job:<id>/checkpoint-N on a host).
        Assert.Equal(["config.json", "model.safetensors", "optimizer.safetensors", "tokenizer.json", "tokenizer_config.json", "trainer_state.json"],
            Directory.GetFiles(path).Select(Path.GetFileName).Order());
        var loaded = ModelLoader.Load(path, dtype, new SdpaAttention()).Model;
        var (expected, actual) = (Logits(model), Logits(loaded));
        Assert.Equal(dtype, actual.dtype);
        Assert.True(expected.eq(actual).all().item<bool>(), "logits of the checkpoint differ from the in-memory model's");

        using var restored = new AdamW(loaded.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), 0.9, 0.999, 1e-8, 0.01);
        var state = Checkpoints.Load(path, restored);
        Assert.Equal(new CheckpointState(2, 32), state);
        Assert.Equal(adam.Step, restored.Step);
        var (before, after) = (adam.StateDict(), restored.StateDict());
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(before, kv => Assert.True(kv.Value.eq(after[kv.Key]).all().item<bool>(), kv.Key));
        model.Dispose(); loaded.Dispose(); adam.Dispose();
    }

    [Fact]
    public void SaveTotalLimit_KeepsNewestAndLeavesNoTemporaryFolders()
    {
        using var scope = NewDisposeScope();
        using var dirs = new RunDirs();
        var output = dirs.Path("out");
        Directory.CreateDirectory(output);
        var p = new TorchSharp.Modules.Parameter(ones(2, 2));
        using var adam = new AdamW([("w", p)], 0.9, 0.999, 1e-8, 0);

        foreach (var step in new[] { 5, 10, 15, 20 })
            Checkpoints.Save(output, step, 0, 0, adam, dir => File.WriteAllText(Path.Combine(dir, "weights"), ""), [], keepNewest: 2);

        Assert.Equal([15, 20], Checkpoints.List(output).Select(c => c.Step));
        Assert.Equal(2, Directory.GetDirectories(output).Length);                       // no .checkpoint-*.tmp left behind
        Assert.Equal(Path.Combine(output, "checkpoint-20"), Checkpoints.Resolve("latest", output));
        Assert.Null(Checkpoints.Resolve("latest", dirs.Path("empty")));
        var e = Assert.Throws<FileNotFoundException>(() => Checkpoints.Resolve(output, output));
        Assert.Contains("resume_from_checkpoint", e.Message);
    }
}
