using System.Text.Json;

namespace LongSeqService.Shared.Models;

/// <summary>
/// Whether a Hugging Face model directory holds what its config.json promises — tokenizer.json and
/// float weights of exactly the model's tensors and shapes — read from the safetensors headers only.
/// Problems are one line and name files relative to the model directory (never a server path).
/// </summary>
public static class ModelDirectoryCheck
{
    public const string TokenizerFile = "tokenizer.json";
    public const string WeightsFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    private static readonly HashSet<string> FloatDTypes = ["F32", "BF16", "F16", "F64"];

    /// <summary>Null when <paramref name="dir"/> can load as the model <paramref name="dims"/> describes, else the problem.</summary>
    public static string? Problem(string dir, DecoderDims dims)
    {
        if (!File.Exists(Path.Combine(dir, TokenizerFile)))
            return $"has no {TokenizerFile} (copy it from the model's Hugging Face repository)";
        var (files, filesProblem) = WeightFiles(dir);
        if (filesProblem is not null) return filesProblem;

        var expected = ModelArchitectures.Parameters(dims).ToDictionary(p => p.Name, p => p.Shape);
        var found = new HashSet<string>();
        foreach (var file in files)
        {
            IReadOnlyDictionary<string, SafetensorsEntry> tensors;
            try { tensors = SafetensorsHeader.Read(Path.Combine(dir, file)); }
            catch (Exception e) when (e is InvalidDataException or IOException) { return $"{file} {e.Message}"; }
            foreach (var (name, entry) in tensors)
            {
                if (!expected.TryGetValue(name, out var shape))
                {
                    if (ModelArchitectures.IsIgnorableTensor(name, dims.TieWordEmbeddings)) continue;
                    return $"{file} holds '{name}', which a {dims.ModelType} model with this config.json does not have";
                }
                if (!FloatDTypes.Contains(entry.DType))
                    return $"{file}: '{name}' is {entry.DType}; only float weights load (F32, BF16, F16, F64), not quantized ones";
                if (!entry.Shape.SequenceEqual(shape))
                    return $"{file}: '{name}' has shape [{string.Join(", ", entry.Shape)}] but config.json gives [{string.Join(", ", shape)}]";
                found.Add(name);
            }
        }
        var missing = expected.Keys.Where(n => !found.Contains(n)).ToArray();
        return missing.Length == 0 ? null
            : $"has no weights for {string.Join(", ", missing.Take(3))}{(missing.Length > 3 ? $" and {missing.Length - 3} more" : "")}";
    }

    private static (string[] Files, string? Problem) WeightFiles(string dir)
    {
        var index = Path.Combine(dir, IndexFile);
        if (File.Exists(index))
        {
            string[] shards;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(index));
                shards = doc.RootElement.GetProperty("weight_map").EnumerateObject().Select(e => e.Value.GetString() ?? "").Distinct().ToArray();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                return ([], $"{IndexFile} has no readable weight_map");
            }
            var bad = shards.FirstOrDefault(f => f.Length == 0 || Path.GetFileName(f) != f);
            if (bad is not null) return ([], $"{IndexFile} names '{bad}', which is not a file name in the model directory");
            var absent = shards.FirstOrDefault(f => !File.Exists(Path.Combine(dir, f)));
            if (absent is not null) return ([], $"{IndexFile} lists {absent}, which is missing");
            return (shards, null);
        }
        if (File.Exists(Path.Combine(dir, WeightsFile))) return ([WeightsFile], null);
        var legacy = File.Exists(Path.Combine(dir, "pytorch_model.bin")) || Directory.EnumerateFiles(dir, "pytorch_model-*.bin").Any();
        return ([], $"has no weights ({WeightsFile}, or {IndexFile} and its shards)"
                    + (legacy ? "; pytorch_model*.bin is not read: save the model with safetensors" : ""));
    }
}
