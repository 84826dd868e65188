using System.Text.Json;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Models;

namespace LongSeqService.Shared.Memory;

/// <summary>
/// The sizes of a Llama / Qwen2 decoder that decide its memory, read from a Hugging Face config.json
/// alone (no weights): what the estimator needs and nothing else.
/// </summary>
public sealed record ModelDims(int Hidden, int Intermediate, int Layers, int Heads, int KvHeads, int HeadDim, int Vocab, bool TiedEmbeddings, bool QkvBias)
{
    /// <summary>The built-in tiny models (the trainer's BuiltinModels holds their full configs; a test keeps the two in agreement).</summary>
    public static readonly IReadOnlyDictionary<string, ModelDims> Builtins = new Dictionary<string, ModelDims>
    {
        ["builtin:tiny-llama"] = new(128, 352, 4, 8, 4, 16, 1024, TiedEmbeddings: false, QkvBias: false),
        ["builtin:tiny-qwen2"] = new(96, 256, 4, 6, 2, 16, 1024, TiedEmbeddings: true, QkvBias: true),
    };

    /// <summary>Parameters of one decoder layer: q/k/v/o (biases on q/k/v for Qwen2), the SwiGLU MLP, two norms.</summary>
    public long LayerParameters =>
        (long)Hidden * Heads * HeadDim * 2 + (long)Hidden * KvHeads * HeadDim * 2 + (QkvBias ? (long)(Heads + 2 * KvHeads) * HeadDim : 0)
        + 3L * Hidden * Intermediate + 2L * Hidden;

    /// <summary>Every parameter: embeddings, the layers, the final norm, and lm_head unless tied.</summary>
    public long Parameters => (long)Vocab * Hidden * (TiedEmbeddings ? 1 : 2) + Layers * LayerParameters + Hidden;

    /// <summary>The largest single weight tensor: the embedding (V × H), or an MLP projection (I × H) or q_proj when bigger.</summary>
    public long LargestParameter => Math.Max((long)Vocab * Hidden, Math.Max((long)Intermediate * Hidden, (long)Heads * HeadDim * Hidden));

    /// <summary>LoRA adapter parameters: A (r × in) and B (out × r) for every targeted projection of every layer.</summary>
    public long LoraParameters(int rank, IReadOnlyCollection<string> targets)
    {
        long q = Heads * (long)HeadDim, kv = KvHeads * (long)HeadDim;
        long PerProjection(string name) => name switch
        {
            "q_proj" => Hidden + q, "k_proj" or "v_proj" => Hidden + kv, "o_proj" => q + Hidden,
            "gate_proj" or "up_proj" => (long)Hidden + Intermediate, "down_proj" => (long)Intermediate + Hidden,
            _ => throw new ArgumentException($"'{name}' is not a projection", nameof(targets)),
        };
        return Layers * rank * targets.Sum(PerProjection);
    }

    /// <summary>Dimensions from config.json text; null with <paramref name="error"/> when a field is missing or not a decoder we train.</summary>
    public static ModelDims? FromConfigJson(string json, string source, out string? error)
    {
        error = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            int? Get(string name) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
            var type = r.TryGetProperty("model_type", out var t) ? t.GetString() ?? "" : "";
            if (type is not ("llama" or "qwen2"))
            {
                error = $"{source}: model_type '{type}' is not supported (llama and qwen2 are)";
                return null;
            }
            var missing = new[] { "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size" }.Where(n => Get(n) is not > 0).ToList();
            if (missing.Count > 0)
            {
                error = $"{source}: {string.Join(", ", missing)} must be positive numbers";
                return null;
            }
            int hidden = Get("hidden_size")!.Value, heads = Get("num_attention_heads")!.Value;
            bool tied = r.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True;
            bool bias = r.TryGetProperty("attention_bias", out var b) && b.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? b.ValueKind == JsonValueKind.True : type == "qwen2";
            return new ModelDims(hidden, Get("intermediate_size")!.Value, Get("num_hidden_layers")!.Value, heads, Get("num_key_value_heads") ?? heads,
                Get("head_dim") ?? hidden / heads, Get("vocab_size")!.Value, tied, bias);
        }
        catch (JsonException e)
        {
            error = $"{source}: not valid JSON ({e.Message})";
            return null;
        }
    }

    /// <summary><c>shape:NAME</c>, <c>builtin:NAME</c> or a local Hugging Face directory (its config.json only).</summary>
    public static ModelDims? Resolve(string model, out string? error)
    {
        error = null;
        if (ModelShapes.IsShape(model))
        {
            var json = ModelShapes.TryGetConfigJson(model);
            if (json is null) { error = ModelShapes.Unknown(model); return null; }
            return FromConfigJson(json, model, out error);
        }
        if (model.StartsWith(ModelShape.BuiltinPrefix, StringComparison.Ordinal))
        {
            if (Builtins.TryGetValue(model, out var dims)) return dims;
            error = $"unknown built-in model '{model}'; built-in models are {string.Join(", ", Builtins.Keys)}";
            return null;
        }
        var config = Path.Combine(model, "config.json");
        if (!File.Exists(config))
        {
            error = $"'{model}' is not a model shape ({ModelShapes.Prefix}NAME), a built-in model ({string.Join(", ", Builtins.Keys)}) or a directory with config.json";
            return null;
        }
        return FromConfigJson(File.ReadAllText(config), config, out error);
    }
}
