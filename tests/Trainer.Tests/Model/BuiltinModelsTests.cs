using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class BuiltinModelsTests
{
    private static IEnumerable<string> HfNames(int layers, bool bias, bool tied)
    {
        yield return "model.embed_tokens.weight";
        for (var i = 0; i < layers; i++)
        {
            var l = $"model.layers.{i}.";
            yield return l + "input_layernorm.weight";
            foreach (var p in new[] { "q_proj", "k_proj", "v_proj" })
            {
                yield return l + $"self_attn.{p}.weight";
                if (bias) yield return l + $"self_attn.{p}.bias";
            }
            yield return l + "self_attn.o_proj.weight";
            yield return l + "post_attention_layernorm.weight";
            foreach (var p in new[] { "gate_proj", "up_proj", "down_proj" }) yield return l + $"mlp.{p}.weight";
        }
        yield return "model.norm.weight";
        if (!tied) yield return "lm_head.weight";
    }

    [Fact]
    public void TinyLlama_ConfigAndParameterNames_AsSpecified()
    {
        using var scope = NewDisposeScope();
        Assert.True(BuiltinModels.TryGet("builtin:tiny-llama", out var cfg));
        Assert.Equal((128, 352, 4, 8, 4, 16, 1024, 10000.0, false, 131072, 1e-6),
            (cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.KeyValueHeads,
             cfg.HeadDim, cfg.VocabSize, cfg.RopeTheta, cfg.TieWordEmbeddings, cfg.MaxPositionEmbeddings, cfg.RmsNormEps));
        var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention());
        Assert.Equal(HfNames(4, bias: false, tied: false), model.named_parameters().Select(p => p.name));
        Assert.Equal([64L, 128], Params(model)["model.layers.0.self_attn.k_proj.weight"].shape);
    }

    [Fact]
    public void TinyQwen2_ConfigAndParameterNames_AsSpecified()
    {
        using var scope = NewDisposeScope();
        Assert.True(BuiltinModels.TryGet("builtin:tiny-qwen2", out var cfg));
        Assert.Equal(("qwen2", 96, 256, 4, 6, 2, 16, 1024, 1000000.0, true, true),
            (cfg.ModelType, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads,
             cfg.KeyValueHeads, cfg.HeadDim, cfg.VocabSize, cfg.RopeTheta, cfg.TieWordEmbeddings, cfg.QkvBias));
        var model = BuiltinModels.Create("builtin:tiny-qwen2", ScalarType.Float32, new SdpaAttention());
        Assert.Equal(HfNames(4, bias: true, tied: true), model.named_parameters().Select(p => p.name));
        Assert.Equal(["builtin:tiny-llama", "builtin:tiny-qwen2", "builtin:tiny-qwen3", "builtin:tiny-llama3"], BuiltinModels.Names);
        Assert.False(BuiltinModels.TryGet("builtin:nope", out _));
    }

    [Fact]
    public void TinyQwen3_ConfigAndParameterNames_QkNormsAndWideHeads()
    {
        using var scope = NewDisposeScope();
        Assert.True(BuiltinModels.TryGet("builtin:tiny-qwen3", out var cfg));
        Assert.Equal(("qwen3", 64, 4, 2, 24, true, false), (cfg.ModelType, cfg.HiddenSize, cfg.NumAttentionHeads, cfg.KeyValueHeads,
            cfg.HeadDim, cfg.TieWordEmbeddings, cfg.QkvBias));
        var model = BuiltinModels.Create("builtin:tiny-qwen3", ScalarType.Float32, new SdpaAttention());
        var names = model.named_parameters().Select(p => p.name).ToList();
        var layer0 = names.Where(n => n.StartsWith("model.layers.0.")).ToList();
        Assert.Equal(["model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight", "model.layers.0.self_attn.q_norm.weight",
            "model.layers.0.self_attn.k_norm.weight", "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"], layer0);
        Assert.DoesNotContain("lm_head.weight", names);
        var p = Params(model);
        Assert.Equal([96L, 64], p["model.layers.0.self_attn.q_proj.weight"].shape);   // 4 heads × 24
        Assert.Equal([64L, 96], p["model.layers.0.self_attn.o_proj.weight"].shape);
        Assert.Equal([24L], p["model.layers.3.self_attn.k_norm.weight"].shape);
    }

    [Fact]
    public void Create_SameSeed_SameWeightsAnyDtype_HfInitStatistics()
    {
        using var scope = NewDisposeScope();
        var a = Params(BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention()));
        var b = Params(BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention()));
        var wide = Params(BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float64, new SdpaAttention()));
        var other = Params(BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention(), seed: 1));
        foreach (var (name, p) in a)
        {
            Assert.True(BitEqual(p, b[name]), name);
            Assert.True(BitEqual(p.to_type(ScalarType.Float64), wide[name]), name);
        }
        Assert.False(BitEqual(a["lm_head.weight"], other["lm_head.weight"]));
        Assert.InRange(a["model.embed_tokens.weight"].std().item<float>(), 0.019, 0.021);
        Assert.True(a["model.layers.1.input_layernorm.weight"].eq(1).all().item<bool>());
    }
}
