using System.Text.Json;
using LongSeqService.Trainer.Model;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class ModelIoTests
{
    private static Tensor Logits(CausalLM model)
    {
        using var noGrad = no_grad();
        return model.call(Ids(2, 16, BuiltinModels.VocabSize, 9), Positions(2, 16));
    }

    [Theory]
    [InlineData("builtin:tiny-llama")]
    [InlineData("builtin:tiny-qwen2")]
    public void SaveThenLoad_Float32_BitIdenticalLogits(string name)
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var (model, cfg, tokenizerDir) = ModelLoader.Load(name, ScalarType.Float32, new SdpaAttention());
            Assert.Null(tokenizerDir);
            Perturb(model, 1);                                                             // non-trivial biases / norms
            ModelSaver.Save(model, dir);

            var (loaded, loadedCfg, _) = ModelLoader.Load(dir, ScalarType.Float32, new SdpaAttention());
            Assert.Equal(cfg.HiddenSize, loadedCfg.HiddenSize);
            Assert.Equal(cfg.TieWordEmbeddings, loadedCfg.TieWordEmbeddings);
            Assert.Equal("float32", loadedCfg.TorchDtype);
            Assert.True(BitEqual(Logits(model), Logits(loaded)));

            var names = Safetensors.LoadStateDict(Path.Combine(dir, "model.safetensors")).Keys.ToHashSet();
            Assert.Contains("model.layers.3.self_attn.q_proj.weight", names);
            Assert.Equal(!cfg.TieWordEmbeddings, names.Contains("lm_head.weight"));
            Assert.Equal(cfg.QkvBias, names.Contains("model.layers.0.self_attn.k_proj.bias"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Load_ShardedIndexDirectory_BitIdenticalLogits()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention(), seed: 17);
            var cfg = model.Config;
            File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(cfg));
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{}");
            var all = model.BaseParameters().ToList();
            var shards = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
            var weightMap = new Dictionary<string, string>();
            for (var s = 0; s < 2; s++)
            {
                var part = all.Where((_, i) => i % 2 == s).ToDictionary(p => p.Name, p => p.Parameter.detach().contiguous());
                Safetensors.SaveStateDict(Path.Combine(dir, shards[s]), part);
                foreach (var key in part.Keys) weightMap[key] = shards[s];
            }
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
                JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));

            var (loaded, _, tokenizerDir) = ModelLoader.Load(dir, ScalarType.Float32, new SdpaAttention());
            Assert.Equal(Path.GetFullPath(dir), tokenizerDir);
            Assert.True(BitEqual(Logits(model), Logits(loaded)));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Load_Float32FileAsBFloat16_CastsWeightsAndRuns()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var model = BuiltinModels.Create("builtin:tiny-qwen2", ScalarType.Float32, new SdpaAttention());
            ModelSaver.Save(model, dir);
            var (bf16, _, _) = ModelLoader.Load(dir, ScalarType.BFloat16, new SdpaAttention());

            var source = Params(model);
            foreach (var (name, p) in Params(bf16))
            {
                Assert.Equal(ScalarType.BFloat16, p.dtype);
                Assert.True(BitEqual(p, source[name].to_type(ScalarType.BFloat16)), name);
            }
            var reference = Logits(model);
            var logits = Logits(bf16);
            Assert.Equal(ScalarType.BFloat16, logits.dtype);
            var scale = reference.abs().max().item<float>();
            Assert.True(MaxAbsDiff(logits, reference) < 0.1 * scale, $"bf16 logits off by {MaxAbsDiff(logits, reference)} (scale {scale})");

            // And a bf16 model saves as bf16 and loads back bit-identically.
            var dir2 = Path.Combine(dir, "bf16");
            ModelSaver.Save(bf16, dir2);
            var (again, againCfg, _) = ModelLoader.Load(dir2, ScalarType.BFloat16, new SdpaAttention());
            Assert.Equal("bfloat16", againCfg.TorchDtype);
            Assert.True(BitEqual(Logits(again), logits));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void SaveThenLoad_UnknownConfigKeys_KeptAndWrittenBack()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention());
            ModelSaver.Save(model, dir);
            var path = Path.Combine(dir, "config.json");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            json["initializer_range"] = 0.02;
            json["transformers_version"] = "4.46.0";
            File.WriteAllText(path, json.ToJsonString());

            var (loaded, cfg, _) = ModelLoader.Load(dir, ScalarType.Float32, new SdpaAttention());
            Assert.Equal(0.02, cfg.Extra!["initializer_range"].GetDouble());
            var dir2 = Path.Combine(dir, "again");
            ModelSaver.Save(loaded, dir2);
            using var written = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir2, "config.json")));
            Assert.Equal("4.46.0", written.RootElement.GetProperty("transformers_version").GetString());
            Assert.Equal(128, written.RootElement.GetProperty("hidden_size").GetInt32());
            Assert.False(written.RootElement.TryGetProperty("head_dim", out _));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Load_MissingTensor_FailsNamingIt()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir();
        try
        {
            var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float32, new SdpaAttention());
            File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(model.Config));
            var partial = model.BaseParameters().Where(p => p.Name != "model.norm.weight")
                .ToDictionary(p => p.Name, p => p.Parameter.detach());
            Safetensors.SaveStateDict(Path.Combine(dir, "model.safetensors"), partial);
            var error = Assert.Throws<InvalidDataException>(() => ModelLoader.Load(dir, ScalarType.Float32, new SdpaAttention()));
            Assert.Contains("model.norm.weight", error.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Load_NotAModelDirectory_SaysWhatWouldWork()
    {
        var error = Assert.Throws<FileNotFoundException>(() =>
            ModelLoader.Load(Path.Combine(Path.GetTempPath(), "no-such-model"), ScalarType.Float32, new SdpaAttention()));
        Assert.Contains("builtin:tiny-llama", error.Message);
    }
}
