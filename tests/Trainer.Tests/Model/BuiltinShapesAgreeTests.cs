using LongSeqService.Shared.Jobs;
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
}
