using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Models;
using TorchSharp;
using LongSeqService.Trainer.Model;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary>The API validates jobs against <see cref="ModelShape.Builtins"/> (it has no TorchSharp); the
/// trainer builds the models from <see cref="BuiltinModels"/>. The two must describe the same models.</summary>
public class BuiltinShapesAgreeTests
{
    [Fact]
    public void SharedShapes_EveryBuiltinModel_MatchesItsTrainerConfig()
    {
        Assert.Equal(BuiltinModels.Names.Order(), ModelShape.Builtins.Keys.Order());
        foreach (var (name, shape) in ModelShape.Builtins)
        {
            Assert.True(BuiltinModels.TryGet(name, out var cfg));
            Assert.Equal((cfg.ModelType, cfg.NumAttentionHeads, cfg.KeyValueHeads, cfg.VocabSize, cfg.MaxPositionEmbeddings),
                (shape.ModelType, shape.NumAttentionHeads, shape.NumKeyValueHeads, shape.VocabSize, shape.MaxPositionEmbeddings));
        }
    }

    /// <summary>The API checks checkpoints against <see cref="ModelArchitectures.Parameters"/>; the trainer's
    /// modules are the truth. Every family, with and without biases and tied embeddings.</summary>
    [Theory]
    [InlineData("llama", false, false)]
    [InlineData("llama", true, true)]
    [InlineData("mistral", false, false)]
    [InlineData("qwen2", null, true)]
    [InlineData("qwen3", false, true)]
    [InlineData("qwen3", true, false)]
    public void ParameterTable_EveryFamily_MatchesTheModulesNamesAndShapes(string type, bool? bias, bool tied)
    {
        using var scope = torch.NewDisposeScope();
        var cfg = ModelTestKit.Micro(qwen: false) with { ModelType = type, AttentionBias = bias, TieWordEmbeddings = tied, HeadDimOverride = 6 };
        using var model = new CausalLM(cfg, new SdpaAttention(), torch.ScalarType.Float32, initSeed: null);

        var modules = model.BaseParameters().Select(p => (p.Name, string.Join(",", p.Parameter.shape))).ToList();
        var table = ModelArchitectures.Parameters(cfg.Dims).Select(p => (p.Name, string.Join(",", p.Shape))).ToList();

        Assert.Equal(modules, table);
    }
}
