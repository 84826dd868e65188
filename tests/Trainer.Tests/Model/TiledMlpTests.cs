using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary>The MLP over sequence tiles (under gradient checkpointing) against the untiled MLP: outputs and every gradient.</summary>
public class TiledMlpTests
{
    private const long T = 11;

    private static (Tensor Out, Dictionary<string, Tensor> Grads) Run(CausalLM model, long dropoutSeed)
    {
        model.zero_grad();
        model.DropoutRandom.Reseed(dropoutSeed);
        var ids = Ids(2, T, model.Config.VocabSize, 20);
        using var g = new Generator(21, CPU);
        var w = randn([2, T, model.Config.VocabSize], dtype: ScalarType.Float64, generator: g);
        var output = model.call(ids, Positions(2, T));
        (output * w).sum().backward();
        return (output.detach(), model.named_parameters().Where(p => p.parameter.requires_grad)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
    }

    private static void AssertSame((Tensor Out, Dictionary<string, Tensor> Grads) a, (Tensor Out, Dictionary<string, Tensor> Grads) b, double tolerance)
    {
        Assert.True(MaxAbsDiff(a.Out, b.Out) <= tolerance, $"output {MaxAbsDiff(a.Out, b.Out):E2}");
        Assert.Equal(a.Grads.Keys.Order(), b.Grads.Keys.Order());
        foreach (var (name, g) in a.Grads)
            Assert.True(MaxAbsDiff(g, b.Grads[name]) <= tolerance, $"{name}: {MaxAbsDiff(g, b.Grads[name]):E2}");
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 4)]                 // 4 + 4 + 3: the tiles don't divide T
    [InlineData(true, 10)]
    public void TiledMlp_Float64Checkpointing_SameOutputAndGradientsAsUntiled(bool qwen, int tile)
    {
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(qwen), new SdpaAttention(), ScalarType.Float64, initSeed: 8);
        Perturb(model, 9);
        model.GradientCheckpointing = true;
        model.MlpTileTokens = (int)T;                                                      // one tile: the untiled MLP
        Assert.All(model.Layers, l => Assert.Equal((int)T, l.Mlp.TileTokens));
        var untiled = Run(model, 1);
        model.MlpTileTokens = tile;
        var tiled = Run(model, 1);

        Assert.Equal(model.parameters().Count(), tiled.Grads.Count);
        AssertSame(untiled, tiled, 1e-13);
        Assert.True(tiled.Grads["model.layers.0.mlp.gate_proj.weight"].abs().sum().item<double>() > 0);
    }

    [Fact]
    public void TiledMlp_OnlyUnderCheckpointing()
    {
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(false), new SdpaAttention(), ScalarType.Float64, initSeed: 8);
        model.MlpTileTokens = 4;
        Assert.All(model.Layers, l => Assert.Null(l.Mlp.TileTokens));
        model.GradientCheckpointing = true;
        Assert.All(model.Layers, l => Assert.Equal(4, l.Mlp.TileTokens));
        model.GradientCheckpointing = false;
        Assert.All(model.Layers, l => Assert.Null(l.Mlp.TileTokens));
    }

    /// <summary>LoRA with dropout: the tiles' backward recomputation replays the forward's masks, both inside a
    /// checkpointed layer's recomputation and without checkpointing.</summary>
    [Fact]
    public void TiledMlp_LoraDropout_RecomputationReplaysTheMasks()
    {
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(true), new SdpaAttention(), ScalarType.Float64, initSeed: 8);
        model.ApplyLora(new LoraSettings(2, 4, 0.3, LoraSettings.AllLinear, Seed: 5));
        using (no_grad()) foreach (var (name, p) in model.named_parameters()) if (name.Contains("lora_B")) p.normal_(0, 0.1);

        model.GradientCheckpointing = true;
        model.MlpTileTokens = 4;
        var checkpointed = Run(model, 77);
        model.GradientCheckpointing = false;
        foreach (var l in model.Layers) l.Mlp.TileTokens = 4;                              // tiled, without checkpointing
        var plain = Run(model, 77);
        var otherMasks = Run(model, 78);

        AssertSame(checkpointed, plain, 1e-13);
        Assert.True(MaxAbsDiff(plain.Out, otherMasks.Out) > 1e-6, "dropout is on: another seed must give other masks");
    }
}
