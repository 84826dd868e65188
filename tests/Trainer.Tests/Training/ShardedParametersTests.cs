using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Tests.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>ZeRO-3's partitioned parameters: gathering the whole model on every rank, or on the saving rank only.</summary>
public class ShardedParametersTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void WholeOn_Root_OnlyTheRootHoldsTheWholeModel_AndItIsTheModelAsBuilt(int ranks)
    {
        var figures = InProcessWorld.Run(ranks, world =>
        {
            using var scope = NewDisposeScope();
            using var model = new CausalLM(ModelTestKit.Micro(qwen: true), new SdpaAttention(), ScalarType.Float64, initSeed: 5);
            var built = Flat(model);
            using var sharded = new ShardedParameters(model, world, keepGradients: false);
            double[] onRoot;
            long heldInside;
            using (sharded.WholeOn(0))
            {
                heldInside = model.parameters().Sum(p => p.numel());
                onRoot = world.Rank == 0 ? Flat(model) : [];
            }
            long heldAfter = model.parameters().Sum(p => p.numel());
            double[] everywhere;
            using (sharded.Whole()) everywhere = Flat(model);     // the partitions are untouched: an all-gather still rebuilds the model
            return (Built: built, OnRoot: onRoot, HeldInside: heldInside, HeldAfter: heldAfter, Everywhere: everywhere);
        });

        Assert.Equal(figures[0].Built, figures[0].OnRoot);
        Assert.Equal(figures[0].Built.Length, figures[0].HeldInside);
        foreach (var f in figures.Skip(1)) Assert.Equal(0, f.HeldInside);        // no full copy on a rank that does not write
        foreach (var f in figures)
        {
            Assert.Equal(0, f.HeldAfter);
            Assert.Equal(figures[0].Built, f.Everywhere);
        }
    }

    private static double[] Flat(CausalLM model)
    {
        using var scope = NewDisposeScope();
        return cat(model.parameters().Select(p => p.detach().flatten()).ToArray()).data<double>().ToArray();
    }
}
