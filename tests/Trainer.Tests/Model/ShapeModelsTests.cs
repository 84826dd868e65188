using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary><c>shape:NAME</c> models: a published config.json built with random weights through the trainer's model factory.</summary>
public class ShapeModelsTests
{
    [Fact]
    public void ShapeConfig_Qwen25_05b_IsTheQwen2Config()
    {
        var cfg = ModelFactory.ShapeConfig("shape:qwen2.5-0.5b");

        Assert.Equal(("qwen2", 896, 4864, 24, 14, 2, 151936, true), (cfg.ModelType, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers,
            cfg.NumAttentionHeads, cfg.KeyValueHeads, cfg.VocabSize, cfg.TieWordEmbeddings));
        Assert.True(cfg.QkvBias);
        Assert.Equal(5e5, ModelFactory.ShapeConfig("shape:qwen2.5-0.5b", ropeTheta: 5e5).RopeTheta);
    }

    [Fact]
    public void Create_Qwen100mShape_RandomWeightsWithTheConfigsParameterCount()
    {
        using var scope = NewDisposeScope();
        var spec = new JobSpec { ModelNameOrPath = "shape:qwen-vocab-100m", Dataset = "(synthetic)", GradientCheckpointing = true };
        var (model, reference) = new ModelFactory(spec, ScalarType.Float32, tokenizerDir: null).Create(new SdpaAttention(), withReference: false);

        Assert.Null(reference);
        Assert.Equal(100_350_464, model.parameters().Sum(p => p.numel()));
        Assert.Equal(151936, model.Config.VocabSize);
        Assert.True(model.GradientCheckpointing);
        Assert.True(model.HeadWeight.std().item<float>() > 0.01f, "random, not zero, weights");
        model.Dispose();
    }

    [Theory]
    [InlineData("shape:gpt-5", "unknown model shape")]
    public void Shape_Unknown_RefusedNamingTheShapes(string model, string missing)
    {
        var e = Assert.Throws<CliException>(() => CheckRuns.Shape(model));
        Assert.StartsWith("--model: ", e.Message);
        Assert.Contains(missing, e.Message);
    }

    [Theory]
    [InlineData("shape:llama-3.2-1b", "llama")]   // rope_scaling llama3
    [InlineData("shape:llama-3.1-8b", "llama")]
    [InlineData("shape:qwen3-0.6b", "qwen3")]     // q/k norms, explicit head_dim
    public void Shape_Llama3xAndQwen3_ResolveAndBuild(string model, string type)
    {
        Assert.Equal(type, CheckRuns.Shape(model).ModelType);
        var cfg = ModelFactory.ShapeConfig(model);
        Assert.Equal(type, cfg.ModelType);
    }

    [Fact]
    public void Shape_Qwen25_ResolvesForBenchAndParity()
    {
        var shape = CheckRuns.Shape("shape:qwen2.5-0.5b");
        Assert.Equal(new ModelShape("qwen2", 14, 2, 151936, 32768), shape);
    }
}
