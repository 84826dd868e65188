using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class GradientCheckpointTests
{
    private static Dictionary<string, Tensor> Grads(CausalLM model, bool checkpointing, Tensor ids, Tensor pos, Tensor w)
    {
        model.zero_grad();
        model.GradientCheckpointing = checkpointing;
        (model.call(ids, pos) * w).sum().backward();
        return model.named_parameters().Where(p => p.parameter.requires_grad)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
    }

    private static (Tensor Ids, Tensor Pos, Tensor W) Batch(ModelConfig cfg)
    {
        using var g = new Generator(21, CPU);
        return (Ids(2, 9, cfg.VocabSize, 20), Positions(2, 9),
            randn([2, 9, cfg.VocabSize], dtype: ScalarType.Float64, generator: g));
    }

    [Fact]
    public void Checkpointing_Float64_SameGradientsForEveryParameter()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: true);
        var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 8);
        Perturb(model, 9);
        var (ids, pos, w) = Batch(cfg);
        var plain = Grads(model, false, ids, pos, w);
        var checkpointed = Grads(model, true, ids, pos, w);
        Assert.Equal(plain.Keys.Order(), checkpointed.Keys.Order());
        Assert.Equal(model.parameters().Count(), plain.Count);
        foreach (var (name, g) in plain)
            Assert.True(MaxAbsDiff(g, checkpointed[name]) <= 1e-12, $"{name}: {MaxAbsDiff(g, checkpointed[name])}");
        Assert.True(plain["model.layers.0.self_attn.q_proj.weight"].abs().sum().item<double>() > 0);
    }

    [Fact]
    public void Checkpointing_RecomputesAttentionOncePerLayerInBackward()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: false);
        var counting = new CountingAttention(new SdpaAttention());
        var model = new CausalLM(cfg, counting, ScalarType.Float64, initSeed: 8);
        var (ids, pos, w) = Batch(cfg);

        model.GradientCheckpointing = true;
        var loss = (model.call(ids, pos) * w).sum();
        Assert.Equal(cfg.NumHiddenLayers, counting.Calls);
        loss.backward();
        Assert.Equal(2 * cfg.NumHiddenLayers, counting.Calls);

        counting.Calls = 0;
        using (no_grad()) model.call(ids, pos);                                            // no graph: no checkpoint node
        Assert.Equal(cfg.NumHiddenLayers, counting.Calls);
    }

    [Fact]
    public void Checkpointing_LoraWithFrozenEmbeddingsAndDropout_SameAdapterGradients()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: false);
        var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 8);
        model.ApplyLora(new LoraSettings(4, 8, 0.3, LoraSettings.AllLinear, Seed: 2));
        using (no_grad())
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.Contains("lora_B")))
                p.normal_(0, 0.1);                                                         // B = 0 would give A no gradient
        model.train();
        var (ids, pos, w) = Batch(cfg);

        // Same dropout stream for both runs: the masks must be the same in forward and recompute.
        var state = model.DropoutRandom.Snapshot();
        var plain = Grads(model, false, ids, pos, w);
        model.DropoutRandom.Restore(state);
        var checkpointed = Grads(model, true, ids, pos, w);

        Assert.Equal(cfg.NumHiddenLayers * 7 * 2, plain.Count);                            // only adapters train
        foreach (var (name, g) in plain)
        {
            Assert.True(g.abs().sum().item<double>() > 0, $"{name} got no gradient");
            Assert.True(MaxAbsDiff(g, checkpointed[name]) <= 1e-12, $"{name}: {MaxAbsDiff(g, checkpointed[name])}");
        }
    }

    [Fact]
    public void Checkpointing_BFloat16TinyLlama_GradientsMatchPlain()
    {
        using var scope = NewDisposeScope();
        var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.BFloat16, new SdpaAttention());
        var ids = Ids(1, 64, 1024, 30);
        Dictionary<string, Tensor> Run(bool checkpointing)
        {
            model.zero_grad();
            model.GradientCheckpointing = checkpointing;
            var logits = model.call(ids, Positions(1, 64)).to_type(ScalarType.Float32);
            var loss = nn.functional.cross_entropy(logits.narrow(1, 0, 63).reshape(-1, 1024), ids.narrow(1, 1, 63).reshape(-1));
            Assert.True(double.IsFinite(loss.item<float>()));
            loss.backward();
            return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var plain = Run(false);
        var checkpointed = Run(true);
        foreach (var (name, g) in plain)
        {
            Assert.Equal(ScalarType.BFloat16, g.dtype);
            var scale = g.abs().max().to_type(ScalarType.Float32).item<float>();
            Assert.True(MaxAbsDiff(g, checkpointed[name]) <= 1e-2 * scale + 1e-6, $"{name}: {MaxAbsDiff(g, checkpointed[name])} (scale {scale})");
        }
    }
}
