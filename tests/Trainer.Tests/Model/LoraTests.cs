using System.Text.Json;
using LongSeqService.Trainer.Model;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class LoraTests
{
    private static Tensor Logits(CausalLM model, ScalarType? _ = null)
    {
        using var noGrad = no_grad();
        return model.call(Ids(2, 10, model.Config.VocabSize, 4), Positions(2, 10));
    }

    [Fact]
    public void ParseTargets_AllAndLists_CanonicalOrUnknownRejected()
    {
        Assert.Equal(LoraSettings.AllLinear, LoraSettings.ParseTargets("all"));
        Assert.Equal(["q_proj", "v_proj"], LoraSettings.ParseTargets(" v_proj, q_proj "));
        var error = Assert.Throws<ArgumentException>(() => LoraSettings.ParseTargets("q_proj,qkv"));
        Assert.Contains("qkv", error.Message);
    }

    [Fact]
    public void ApplyLora_BeforeTraining_OutputUnchangedAndOnlyAdaptersTrainable()
    {
        using var scope = NewDisposeScope();
        var model = BuiltinModels.Create("builtin:tiny-qwen2", ScalarType.Float32, new SdpaAttention());
        var before = Logits(model);
        model.ApplyLora(new LoraSettings(4, 8, 0.0, LoraSettings.ParseTargets("q_proj,v_proj")));
        Assert.True(BitEqual(Logits(model), before));                                      // B = 0
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(4 * 2 * 2, trainable.Count);
        Assert.All(trainable, n => Assert.True(LoraAdapters.IsAdapterName(n), n));
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", model.BaseParameters().Select(p => p.Name));
    }

    [Fact]
    public void OptimizerStep_Lora_BaseWeightsBitIdenticalAndLoraBChanged()
    {
        using var scope = NewDisposeScope();
        var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention());
        model.ApplyLora(new LoraSettings(8, 16, 0.1, LoraSettings.AllLinear));
        model.train();
        var baseBefore = model.BaseParameters().ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        var bBefore = Params(model)["model.layers.2.mlp.down_proj.lora_B.weight"].detach().clone();
        var optimizer = optim.AdamW(model.parameters().Where(p => p.requires_grad), lr: 1e-3, weight_decay: 0.1);

        var ids = Ids(2, 12, 1024, 3);
        var logits = model.call(ids, Positions(2, 12));
        var loss = nn.functional.cross_entropy(logits.narrow(1, 0, 11).reshape(-1, 1024), ids.narrow(1, 1, 11).reshape(-1));
        loss.backward();
        optimizer.step();

        foreach (var (name, p) in model.BaseParameters())
        {
            Assert.True(BitEqual(p, baseBefore[name]), $"{name} changed");
            Assert.Null(p.grad);
        }
        var bAfter = Params(model)["model.layers.2.mlp.down_proj.lora_B.weight"];
        Assert.False(BitEqual(bAfter, bBefore));
    }

    [Fact]
    public void SaveAdapter_PeftLayout_NamesShapesAndConfig()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention());
            model.ApplyLora(new LoraSettings(4, 8, 0.05, LoraSettings.ParseTargets("q_proj,v_proj")));
            LoraAdapters.Save(model, dir, "builtin:tiny-llama");

            var tensors = Safetensors.LoadStateDict(Path.Combine(dir, "adapter_model.safetensors"));
            Assert.Equal(4 * 2 * 2, tensors.Count);
            Assert.Equal([4L, 128], tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].shape);
            Assert.Equal([128L, 4], tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].shape);
            Assert.Equal([64L, 4], tensors["base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight"].shape);

            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")));
            var root = json.RootElement;
            Assert.Equal("LORA", root.GetProperty("peft_type").GetString());
            Assert.Equal("CAUSAL_LM", root.GetProperty("task_type").GetString());
            Assert.Equal(4, root.GetProperty("r").GetInt32());
            Assert.Equal(8, root.GetProperty("lora_alpha").GetDouble());
            Assert.Equal(0.05, root.GetProperty("lora_dropout").GetDouble());
            Assert.Equal("builtin:tiny-llama", root.GetProperty("base_model_name_or_path").GetString());
            Assert.Equal(["q_proj", "v_proj"], root.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void SaveThenLoadAdapter_FreshBaseModel_BitIdenticalLogits()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var model = BuiltinModels.Create("builtin:tiny-qwen2", ScalarType.Float32, new SdpaAttention());
            model.ApplyLora(new LoraSettings(4, 8, 0.0, LoraSettings.AllLinear));
            using (no_grad())
                foreach (var (_, p) in model.named_parameters().Where(p => p.name.Contains("lora_B")))
                    p.normal_(0, 0.05);
            LoraAdapters.Save(model, dir, "builtin:tiny-qwen2");

            var fresh = BuiltinModels.Create("builtin:tiny-qwen2", ScalarType.Float32, new SdpaAttention());
            LoraAdapters.Load(fresh, dir);
            Assert.Equal(model.Lora!.TargetModules, fresh.Lora!.TargetModules);
            Assert.True(BitEqual(Logits(fresh), Logits(model)));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void MergeLora_Float64_SameLogitsAsAdapters()
    {
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(qwen: true), new MathAttention(), ScalarType.Float64, initSeed: 3);
        Perturb(model, 4);
        model.ApplyLora(new LoraSettings(2, 6, 0.0, LoraSettings.AllLinear));
        using (no_grad())
            foreach (var (_, p) in model.named_parameters().Where(p => p.name.Contains("lora_B")))
                p.normal_(0, 0.2);
        var withAdapters = Logits(model);
        var baseNames = model.BaseParameters().Select(p => p.Name).ToList();

        model.MergeLora();
        Assert.Null(model.Lora);
        Assert.Equal(baseNames, model.named_parameters().Select(p => p.name).ToList());   // HF names and order
        var merged = Logits(model);
        Assert.True(MaxAbsDiff(withAdapters, merged) < 1e-12);
        Assert.True(model.parameters().All(p => p.requires_grad));
    }
}
