using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Applying, merging, saving and loading LoRA adapters. Files follow PEFT's layout, so an adapter
/// trained here loads with <c>PeftModel.from_pretrained</c>: <c>adapter_model.safetensors</c> with
/// names like <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>, and
/// <c>adapter_config.json</c>.
/// </summary>
public static class LoraAdapters
{
    public const string WeightsFile = "adapter_model.safetensors";
    public const string ConfigFile = "adapter_config.json";
    /// <summary>PEFT's prefix: PeftModel.base_model (LoraModel) .model (the HF model).</summary>
    public const string PeftPrefix = "base_model.model.";

    public static bool IsAdapterName(string name) => name.Contains(".lora_A.") || name.Contains(".lora_B.");

    /// <summary>Freezes every parameter, then wraps the target projections of every layer in <see cref="LoraLinear"/>.</summary>
    public static void Apply(CausalLM model, LoraSettings settings)
    {
        settings.Validate();
        if (model.Lora is not null) throw new InvalidOperationException("LoRA is already applied to this model.");
        foreach (var p in model.parameters()) p.requires_grad_(false);
        using var generator = new Generator((ulong)settings.Seed, CPU);
        foreach (var layer in model.Layers)
        {
            // Layer order, then HF module order: the adapter init does not depend on the target list's spelling.
            foreach (var name in LoraSettings.AllLinear.Where(settings.TargetModules.Contains))
            {
                var (get, set) = Slot(layer, name);
                if (get() is not Linear linear)
                    throw new InvalidOperationException($"{name} is not a plain Linear (already wrapped?).");
                set(new LoraLinear(linear, settings.Rank, settings.Alpha, settings.Dropout, generator, model.DropoutRandom));
            }
        }
        model.Lora = settings;
    }

    /// <summary>
    /// Turns every adapter off until the returned handle is disposed: the model is then its frozen base,
    /// which is DPO's reference model under LoRA (no second copy of the weights in memory).
    /// </summary>
    public static IDisposable Disabled(CausalLM model)
    {
        var adapters = model.modules().OfType<LoraLinear>().Where(l => l.AdapterEnabled).ToList();
        foreach (var a in adapters) a.AdapterEnabled = false;
        return new Restore(adapters);
    }

    private sealed class Restore(List<LoraLinear> adapters) : IDisposable
    {
        public void Dispose() { foreach (var a in adapters) a.AdapterEnabled = true; }
    }

    /// <summary>Replaces every <see cref="LoraLinear"/> by a Linear with the merged weight; all parameters trainable again.</summary>
    public static void Merge(CausalLM model)
    {
        if (model.Lora is null) throw new InvalidOperationException("No LoRA adapters to merge.");
        foreach (var layer in model.Layers)
        {
            foreach (var name in LoraSettings.AllLinear)
            {
                var (get, set) = Slot(layer, name);
                if (get() is LoraLinear lora) set(lora.Merge());
            }
        }
        foreach (var p in model.parameters()) p.requires_grad_(true);
        model.Lora = null;
    }

    /// <summary>Writes adapter_model.safetensors and adapter_config.json into <paramref name="dir"/>.</summary>
    public static void Save(CausalLM model, string dir, string baseModelNameOrPath)
    {
        var settings = model.Lora ?? throw new InvalidOperationException("The model has no LoRA adapters to save.");
        Directory.CreateDirectory(dir);
        var tensors = model.named_parameters()
            .Where(p => IsAdapterName(p.name))
            .ToDictionary(p => PeftPrefix + p.name, p => p.parameter.detach().cpu().contiguous());
        Safetensors.SaveStateDict(Path.Combine(dir, WeightsFile), tensors);
        foreach (var t in tensors.Values) t.Dispose();

        var config = new AdapterConfig
        {
            R = settings.Rank,
            LoraAlpha = settings.Alpha,
            LoraDropout = settings.Dropout,
            TargetModules = [.. settings.TargetModules],
            BaseModelNameOrPath = baseModelNameOrPath,
        };
        File.WriteAllText(Path.Combine(dir, ConfigFile), JsonSerializer.Serialize(config, AdapterConfig.JsonOptions));
    }

    /// <summary>Reads a PEFT adapter directory's settings.</summary>
    public static LoraSettings ReadSettings(string dir)
    {
        var config = JsonSerializer.Deserialize<AdapterConfig>(File.ReadAllText(Path.Combine(dir, ConfigFile)))
            ?? throw new InvalidDataException($"{ConfigFile} in {dir} is empty.");
        if (config.PeftType != "LORA") throw new NotSupportedException($"peft_type {config.PeftType} is not supported (LORA only).");
        return new LoraSettings(config.R, config.LoraAlpha, config.LoraDropout, config.TargetModules);
    }

    /// <summary>
    /// Applies LoRA as described by the directory's adapter_config.json (unless already applied) and
    /// loads the adapter tensors; every adapter tensor of the model must be present in the file.
    /// </summary>
    public static void Load(CausalLM model, string dir)
    {
        if (model.Lora is null) Apply(model, ReadSettings(dir));
        var loaded = Safetensors.LoadStateDict(Path.Combine(dir, WeightsFile));
        try
        {
            var adapters = model.named_parameters().Where(p => IsAdapterName(p.name)).ToDictionary(p => p.name, p => p.parameter);
            using var noGrad = no_grad();
            foreach (var (name, p) in adapters)
            {
                if (!loaded.TryGetValue(PeftPrefix + name, out var t))
                    throw new InvalidDataException($"{WeightsFile} in {dir} has no tensor {PeftPrefix + name}.");
                if (!t.shape.SequenceEqual(p.shape))
                    throw new InvalidDataException($"{PeftPrefix + name}: shape [{string.Join(", ", t.shape)}] in the file, [{string.Join(", ", p.shape)}] in the model.");
                p.copy_(t);
            }
        }
        finally
        {
            foreach (var t in loaded.Values) t.Dispose();
        }
    }

    private static (Func<nn.Module<Tensor, Tensor>> Get, Action<nn.Module<Tensor, Tensor>> Set) Slot(DecoderLayer layer, string name) =>
        DecoderAttention.ProjectionNames.Contains(name)
            ? (() => layer.SelfAttention.GetProjection(name), m => layer.SelfAttention.SetProjection(name, m))
            : (() => layer.Mlp.GetProjection(name), m => layer.Mlp.SetProjection(name, m));
}

/// <summary>PEFT's <c>adapter_config.json</c> for a LoRA adapter on a causal LM.</summary>
public sealed record AdapterConfig
{
    internal static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    [JsonPropertyName("peft_type")] public string PeftType { get; init; } = "LORA";
    [JsonPropertyName("task_type")] public string TaskType { get; init; } = "CAUSAL_LM";
    [JsonPropertyName("r")] public int R { get; init; }
    [JsonPropertyName("lora_alpha")] public double LoraAlpha { get; init; }
    [JsonPropertyName("lora_dropout")] public double LoraDropout { get; init; }
    [JsonPropertyName("target_modules")] public string[] TargetModules { get; init; } = [];
    [JsonPropertyName("base_model_name_or_path")] public string? BaseModelNameOrPath { get; init; }
    [JsonPropertyName("bias")] public string Bias { get; init; } = "none";
    [JsonPropertyName("fan_in_fan_out")] public bool FanInFanOut { get; init; }
    [JsonPropertyName("inference_mode")] public bool InferenceMode { get; init; } = true;
    [JsonPropertyName("init_lora_weights")] public bool InitLoraWeights { get; init; } = true;
    [JsonPropertyName("use_rslora")] public bool UseRslora { get; init; }
    [JsonPropertyName("use_dora")] public bool UseDora { get; init; }
    [JsonPropertyName("modules_to_save")] public string[]? ModulesToSave { get; init; }
}
