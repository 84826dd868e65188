using System.Text.Json;
using LongSeqService.Shared.Models;

namespace LongSeqService.Shared.Jobs;

/// <summary>The few numbers of a model that decide whether a job spec can run: heads for the
/// sequence-parallel modes, the context limit, the vocabulary.</summary>
public sealed record ModelShape(string ModelType, int NumAttentionHeads, int NumKeyValueHeads, int VocabSize, int MaxPositionEmbeddings)
{
    public const string BuiltinPrefix = "builtin:";

    /// <summary>Shapes of the built-in tiny models (the trainer's BuiltinModels holds their full configs;
    /// a test keeps the two in agreement).</summary>
    public static readonly IReadOnlyDictionary<string, ModelShape> Builtins = new Dictionary<string, ModelShape>
    {
        ["builtin:tiny-llama"] = new("llama", 8, 4, 1024, 131072),
        ["builtin:tiny-qwen2"] = new("qwen2", 6, 2, 1024, 131072),
    };

    /// <summary>Resolves a built-in name or a local Hugging Face directory's config.json.</summary>
    public static ModelShape? TryResolve(string nameOrPath, out string? error)
    {
        error = null;
        if (nameOrPath.StartsWith(BuiltinPrefix, StringComparison.Ordinal))
        {
            if (Builtins.TryGetValue(nameOrPath, out var shape)) return shape;
            error = $"unknown built-in model '{nameOrPath}'; built-in models are {string.Join(", ", Builtins.Keys)}";
            return null;
        }
        if (ModelShapes.IsShape(nameOrPath))
        {
            if (ModelShapes.TryGetConfigJson(nameOrPath) is { } json) return Parse(json, nameOrPath, out error);
            error = ModelShapes.Unknown(nameOrPath);
            return null;
        }
        var config = Path.Combine(nameOrPath, "config.json");
        if (!File.Exists(config))
        {
            error = Directory.Exists(nameOrPath)
                ? $"'{nameOrPath}' has no config.json (a Hugging Face model directory needs config.json, *.safetensors, tokenizer.json)"
                : $"'{nameOrPath}' is neither a built-in model ({string.Join(", ", Builtins.Keys)}) nor an existing directory";
            return null;
        }
        return Parse(File.ReadAllText(config), config, out error);
    }

    /// <summary>The shape of a config.json's text; <paramref name="source"/> names it in errors.</summary>
    private static ModelShape? Parse(string json, string source, out string? error)
    {
        error = null;
        var config = source;
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            int Get(string name, int fallback) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : fallback;
            int heads = Get("num_attention_heads", 0);
            var type = r.TryGetProperty("model_type", out var t) ? t.GetString() ?? "" : "";
            if (type is not ("llama" or "qwen2") || heads <= 0)
            {
                error = $"{config}: model_type '{type}' is not supported (llama and qwen2 are)";
                return null;
            }
            return new ModelShape(type, heads, Get("num_key_value_heads", heads), Get("vocab_size", 0), Get("max_position_embeddings", 4096));
        }
        catch (JsonException e)
        {
            error = $"{config}: not valid JSON ({e.Message})";
            return null;
        }
    }
}
