using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary>
/// Real model directories (config.json, model.safetensors, tokenizer.json written here): a save→load
/// round trip keeps every architecture field, and each way a directory can fail to load is refused by
/// <see cref="ModelShape.TryResolve"/> (what the API calls at submission) and by the CLI's preparation
/// before output_dir exists, in one line naming the model by its name, never a server path.
/// </summary>
public sealed class ModelDirectoryTests : IDisposable
{
    private readonly string _root = TempDir();
    private string ModelDir => Path.Combine(_root, "srv", "models", "my-qwen3");
    private string OutputDir => Path.Combine(_root, "out");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void WriteModel(string builtin = "builtin:tiny-qwen3")
    {
        using var scope = NewDisposeScope();
        using var model = BuiltinModels.Create(builtin, ScalarType.Float32, new SdpaAttention());
        ModelSaver.Save(model, ModelDir);
        BuiltinTokenizer.WriteTo(ModelDir);
    }

    private void EditConfig(Action<JsonObject> edit)
    {
        var path = Path.Combine(ModelDir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    [Theory]
    [InlineData("builtin:tiny-qwen3")]
    [InlineData("builtin:tiny-llama3")]
    public void SaveThenLoad_ArchitectureFields_KeptAndLogitsBitIdentical(string builtin)
    {
        using var scope = NewDisposeScope();
        WriteModel(builtin);
        EditConfig(c => c["sliding_window"] = null);                                       // HF configs carry it as null
        using var original = BuiltinModels.Create(builtin, ScalarType.Float32, new SdpaAttention());

        var (loaded, cfg, _) = ModelLoader.Load(ModelDir, ScalarType.Float32, new SdpaAttention());
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelDir, "config.json")))!;

        Assert.Equal((original.Config.ModelType, original.Config.HeadDim, original.Config.RopeTheta), (cfg.ModelType, cfg.HeadDim, cfg.RopeTheta));
        Assert.Equal(original.Config.RopeScaling?.GetRawText() is { } raw ? JsonNode.Parse(raw)!.ToJsonString() : null, saved["rope_scaling"]?.ToJsonString());
        Assert.Equal(original.Config.HeadDimOverride, (int?)saved["head_dim"]);
        var ids = Ids(1, 80, BuiltinModels.VocabSize, 3);                                  // past llama3's 64-token original context
        Assert.True(BitEqual(original.call(ids, Positions(1, 80)), loaded.call(ids, Positions(1, 80))));
        Assert.NotNull(ModelShape.TryResolve(ModelDir, out var error));
        Assert.Null(error);
    }

    public static TheoryData<string, string> Broken => new()
    {
        { "no-weights", "has no weights" },
        { "model-type", "model_type 'gemma2'" },
        { "rope-scaling", "rope_scaling type 'longrope' is not supported" },
        { "shape", "'model.layers.0.mlp.gate_proj.weight' has shape [192, 64] but config.json gives [200, 64]" },
        { "extra-tensor", "holds 'model.layers.3.input_layernorm.weight'" },
        { "missing-tensor", "has no weights for lm_head.weight" },
        { "no-tokenizer", "has no tokenizer.json" },
        { "truncated", "model.safetensors tensor" },
        { "shard-missing", "lists model-00002-of-00002.safetensors, which is missing" },
        { "quantized", "is I8" },
    };

    private void Break(string how)
    {
        var weights = Path.Combine(ModelDir, "model.safetensors");
        switch (how)
        {
            case "no-weights": File.Delete(weights); break;
            case "model-type": EditConfig(c => c["model_type"] = "gemma2"); break;
            case "rope-scaling": EditConfig(c => c["rope_scaling"] = JsonNode.Parse("""{"rope_type": "longrope", "factor": 4.0, "long_factor": [1.0], "short_factor": [1.0]}""")); break;
            case "shape": EditConfig(c => c["intermediate_size"] = 200); break;
            case "extra-tensor": EditConfig(c => c["num_hidden_layers"] = 3); break;
            case "missing-tensor": EditConfig(c => c["tie_word_embeddings"] = false); break;
            case "no-tokenizer": File.Delete(Path.Combine(ModelDir, "tokenizer.json")); break;
            case "truncated":
                using (var f = File.OpenWrite(weights)) f.SetLength(f.Length - 100);
                break;
            case "shard-missing":
                File.Move(weights, Path.Combine(ModelDir, "model-00001-of-00002.safetensors"));
                File.WriteAllText(Path.Combine(ModelDir, "model.safetensors.index.json"),
                    """{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors", "model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}""");
                break;
            case "quantized":
                // Same byte length, another dtype in the header: an int8 checkpoint.
                var bytes = File.ReadAllBytes(weights);
                var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToInt64(bytes, 0));
                var i = header.IndexOf("\"model.norm.weight\"", StringComparison.Ordinal);
                var j = header.IndexOf("\"F32\"", i, StringComparison.Ordinal);
                var patched = header[..j] + "\"I8\" " + header[(j + 5)..];
                System.Text.Encoding.UTF8.GetBytes(patched).CopyTo(bytes, 8);
                File.WriteAllBytes(weights, bytes);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Broken))]
    public void TryResolve_DirectoryThatCannotLoad_OneLineNamingTheProblemNotThePath(string how, string expected)
    {
        WriteModel();
        Break(how);

        Assert.Null(ModelShape.TryResolve(ModelDir, out var error, displayName: "my-qwen3"));

        Assert.StartsWith("'my-qwen3' ", error);
        Assert.Contains(expected, error);
        Assert.DoesNotContain(_root, error!);
        Assert.DoesNotContain("\n", error!);
    }

    [Theory]
    [MemberData(nameof(Broken))]
    public void Prepare_DirectoryThatCannotLoad_RefusedBeforeOutputDirExists(string how, string expected)
    {
        WriteModel();
        Break(how);
        var spec = new JobSpec
        {
            ModelNameOrPath = ModelDir, Template = "qwen", Dataset = RepoPaths.Data("identity.json"), MaxSamples = 4, CutoffLen = 64,
            MaxSteps = 1, OutputDir = OutputDir,
        };

        var e = Assert.Throws<JobSpecException>(() => RunPreparation.Prepare(spec, _root));

        var error = Assert.Single(e.Errors);
        Assert.Equal("model_name_or_path", error.Field);
        Assert.Contains(expected, error.Message);
        Assert.False(Directory.Exists(OutputDir), "output_dir was created");
    }

    [Fact]
    public void TryResolve_MistralWithBitingSlidingWindow_ValidatorRefusesCutoffLen()
    {
        WriteModel("builtin:tiny-llama");
        EditConfig(c => { c["model_type"] = "mistral"; c["sliding_window"] = 64; });
        var shape = ModelShape.TryResolve(ModelDir, out var error);
        Assert.Null(error);

        var longer = JobSpecValidator.Validate(new JobSpec { ModelNameOrPath = ModelDir, Dataset = "d.json", CutoffLen = 65 }, shape);
        var within = JobSpecValidator.Validate(new JobSpec { ModelNameOrPath = ModelDir, Dataset = "d.json", CutoffLen = 64 }, shape);

        Assert.Contains(longer, e => e.Field == "cutoff_len" && e.Message.Contains("sliding_window 64"));
        Assert.DoesNotContain(within, e => e.Field == "cutoff_len");
    }

    [Fact]
    public void Forward_SlidingWindowShorterThanTheSequence_Refused()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: false) with { ModelType = "mistral", SlidingWindow = 8 };
        using var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64);

        model.call(Ids(1, 8, cfg.VocabSize, 1), Positions(1, 8));                          // within the window: plain causal
        var e = Assert.Throws<NotSupportedException>(() => model.call(Ids(1, 9, cfg.VocabSize, 1), Positions(1, 9)));
        Assert.Contains("sliding_window 8", e.Message);
    }
}
