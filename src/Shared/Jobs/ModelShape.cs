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
        ["builtin:tiny-qwen3"] = new("qwen3", 4, 2, 1024, 131072),
        ["builtin:tiny-llama3"] = new("llama", 8, 4, 1024, 131072),
    };

    /// <summary>The attention window that would limit long sequences (Mistral's sliding_window), null for none.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>
    /// Resolves a built-in name or a local Hugging Face directory, refusing one that cannot load:
    /// no config.json, an unsupported model_type or rope_scaling, no tokenizer.json, no weights, or
    /// weights whose tensors or shapes disagree with config.json (read from the safetensors headers,
    /// no weight loaded). <paramref name="error"/> is one line naming the model as
    /// <paramref name="displayName"/> (default: as given), and files relative to it, never a server path.
    /// </summary>
    public static ModelShape? TryResolve(string nameOrPath, out string? error, string? displayName = null)
    {
        error = null;
        if (nameOrPath.StartsWith(BuiltinPrefix, StringComparison.Ordinal))
        {
            if (Builtins.TryGetValue(nameOrPath, out var shape)) return shape;
            error = $"unknown built-in model '{nameOrPath}'; built-in models are {string.Join(", ", Builtins.Keys)}";
            return null;
        }
        var name = $"'{displayName ?? nameOrPath}'";
        if (ModelShapes.IsShape(nameOrPath))
        {
            // shape:NAME — a published config.json, built with random weights: nothing on disk to check.
            if (ModelShapes.TryGetConfigJson(nameOrPath) is not { } json) { error = ModelShapes.Unknown(nameOrPath); return null; }
            using var shapeDoc = JsonDocument.Parse(json);
            var (fromShape, shapeProblem) = FromConfig(shapeDoc.RootElement);
            error = shapeProblem is null ? null : $"{name} {shapeProblem}";
            return fromShape;
        }
        var config = Path.Combine(nameOrPath, "config.json");
        if (!File.Exists(config))
        {
            error = Directory.Exists(nameOrPath)
                ? $"{name} has no config.json (a Hugging Face model directory needs config.json, *.safetensors, tokenizer.json)"
                : $"{name} is neither a built-in model ({string.Join(", ", Builtins.Keys)}) nor an existing directory";
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(config));
            var (resolved, problem) = FromConfig(doc.RootElement);
            problem ??= resolved is null ? null : ModelDirectoryCheck.Problem(nameOrPath, Dims(doc.RootElement, resolved));
            if (problem is null) return resolved;
            error = $"{name} {problem}";
            return null;
        }
        catch (JsonException e)
        {
            error = $"{name}: config.json is not valid JSON ({e.Message})";
            return null;
        }
    }

    // The shape of a config.json, or the reason the trainer could not build it.
    private static (ModelShape? Shape, string? Problem) FromConfig(JsonElement r)
    {
        var type = r.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() ?? "" : "";
        if (!ModelArchitectures.SupportedTypes.Contains(type))
            return (null, $"has model_type '{type}' in config.json, which is not supported ({string.Join(", ", ModelArchitectures.SupportedTypes)} are)");
        int heads = Int(r, "num_attention_heads", 0);
        if (heads <= 0 || Int(r, "hidden_size", 0) <= 0 || Int(r, "num_hidden_layers", 0) <= 0 || Int(r, "vocab_size", 0) <= 0)
            return (null, "has a config.json without positive hidden_size, num_hidden_layers, num_attention_heads and vocab_size");
        var scaling = r.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind != JsonValueKind.Null ? rs
            : r.TryGetProperty("rope_parameters", out var rp) ? rp : (JsonElement?)null;
        RopeScaling.Parse(scaling, out var ropeError);
        if (ropeError is not null) return (null, $"has {ropeError} (config.json)");
        int? window = r.TryGetProperty("sliding_window", out var w) && w.ValueKind == JsonValueKind.Number ? w.GetInt32() : null;
        bool? useWindow = r.TryGetProperty("use_sliding_window", out var u) && u.ValueKind is JsonValueKind.True or JsonValueKind.False ? u.GetBoolean() : null;
        return (new ModelShape(type, heads, Int(r, "num_key_value_heads", heads), Int(r, "vocab_size", 0), Int(r, "max_position_embeddings", 4096))
        {
            SlidingWindow = ModelArchitectures.SlidingWindow(type, window, useWindow),
        }, null);
    }

    private static DecoderDims Dims(JsonElement r, ModelShape shape)
    {
        int hidden = Int(r, "hidden_size", 0);
        bool? bias = r.TryGetProperty("attention_bias", out var b) && b.ValueKind is JsonValueKind.True or JsonValueKind.False ? b.GetBoolean() : null;
        bool tie = r.TryGetProperty("tie_word_embeddings", out var tw) && tw.ValueKind == JsonValueKind.True;
        return new DecoderDims(shape.ModelType, shape.VocabSize, hidden, Int(r, "intermediate_size", 0), Int(r, "num_hidden_layers", 0),
            shape.NumAttentionHeads, shape.NumKeyValueHeads, Int(r, "head_dim", hidden / shape.NumAttentionHeads), tie, bias);
    }

    private static int Int(JsonElement r, string name, int fallback) =>
        r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : fallback;
}
