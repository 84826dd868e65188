using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Writes a model the way Hugging Face does: <c>config.json</c> and <c>model.safetensors</c> with HF
/// parameter names (no <c>lm_head.weight</c> when embeddings are tied), in the model's dtype.
/// LoRA adapter tensors are not written here: merge them first (<see cref="CausalLM.MergeLora"/>) or
/// save them with <see cref="LoraAdapters.Save"/>.
/// </summary>
public static class ModelSaver
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static void Save(CausalLM model, string dir)
    {
        Directory.CreateDirectory(dir);
        SaveConfig(model, dir);

        var tensors = model.BaseParameters().ToDictionary(p => p.Name, p => p.Parameter.detach().cpu().contiguous());
        try
        {
            Safetensors.SaveStateDict(Path.Combine(dir, ModelLoader.WeightsFile), tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>config.json for <paramref name="model"/> (with its dtype), e.g. beside a LoRA adapter.</summary>
    public static void SaveConfig(CausalLM model, string dir)
    {
        var cfg = model.Config with { TorchDtype = HfDtypeName(model.DType) };
        File.WriteAllText(Path.Combine(dir, ModelLoader.ConfigFile), JsonSerializer.Serialize(cfg, JsonOptions));
    }

    public static string HfDtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new NotSupportedException($"Cannot save a model in {dtype}."),
    };
}
