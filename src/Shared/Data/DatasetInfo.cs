using System.Text.Json;

namespace LongSeqService.Shared.Data;

/// <summary>
/// Resolves a <c>dataset</c> value as LLaMA-Factory does: a comma list of names, each looked up in
/// <c>dataset_dir/dataset_info.json</c> (<c>file_name</c> relative to <c>dataset_dir</c>, <c>formatting</c>,
/// <c>ranking</c>, <c>columns</c>, <c>tags</c>; see its <c>data/parser.py</c>). An item that is not a name
/// there but names a file (a path, or a <c>.json</c>/<c>.jsonl</c> file) is read by path with its format
/// detected, as this service always did. Downloads (hf_hub_url, ms_hub_url, script_url, cloud_file_name) are
/// refused: runs read local files only.
/// </summary>
public static class DatasetInfo
{
    public const string FileName = "dataset_info.json";
    public const string DefaultDir = "data";

    private static readonly string[] RemoteKeys = ["hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"];

    /// <param name="list">The <c>dataset</c> (or <c>eval_dataset</c>) value: comma-separated names or paths.</param>
    /// <param name="baseDir">Where relative file paths are resolved (the config file's folder).</param>
    /// <param name="datasetDir">The folder holding dataset_info.json, already resolved.</param>
    /// <exception cref="DatasetNameException">A name not defined or a file missing.</exception>
    /// <exception cref="DatasetException">dataset_info.json or one of its entries cannot be read (the message names the file and the entry).</exception>
    public static List<DatasetSource> Resolve(string list, string baseDir, string datasetDir)
    {
        var items = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.Length == 0) throw Error(list, "names no dataset");
        var infoPath = Path.Combine(datasetDir, FileName);
        Dictionary<string, JsonElement>? info = null;
        var sources = new List<DatasetSource>();
        foreach (var item in items)
        {
            info ??= File.Exists(infoPath) ? Read(infoPath) : null;
            if (info != null && info.TryGetValue(item, out var entry))
            {
                sources.Add(FromEntry(item, entry, datasetDir, infoPath));
                continue;
            }
            var path = Path.GetFullPath(item, baseDir);
            if (File.Exists(path)) { sources.Add(DatasetSource.File(path)); continue; }
            if (LooksLikePath(item)) throw Error(item, $"file '{path}' not found");
            throw info is null
                ? Error(item, $"is not a file, and there is no {infoPath} to look the name up in; give a .json/.jsonl path or set dataset_dir to the folder holding {FileName}")
                : Error(item, $"is not defined in {infoPath}; it defines {string.Join(", ", info.Keys)}");
        }
        return sources;
    }

    private static bool LooksLikePath(string item) =>
        item.Contains('/') || item.Contains('\\') || item.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || item.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    private static Dictionary<string, JsonElement> Read(string infoPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(infoPath), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new DatasetException(infoPath, [new DatasetError(1, "must be a JSON object of name → {\"file_name\": ...}")], 1);
            return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
        }
        catch (JsonException e)
        {
            throw new DatasetException(infoPath, [new DatasetError((int)(e.LineNumber ?? 0) + 1, "malformed JSON")], 1);
        }
    }

    private static DatasetSource FromEntry(string name, JsonElement entry, string datasetDir, string infoPath)
    {
        DatasetException Bad(string message) => new(infoPath, [new DatasetError(0, $"'{name}': {message}")], 1);
        if (entry.ValueKind != JsonValueKind.Object) throw Bad("must be an object with a file_name");
        if (RemoteKeys.FirstOrDefault(k => entry.TryGetProperty(k, out _)) is { } remote && !entry.TryGetProperty("file_name", out _))
            throw Bad($"is a download ({remote}); runs read local files only: download it and give a file_name");
        if (!entry.TryGetProperty("file_name", out var fileEl) || fileEl.ValueKind != JsonValueKind.String)
            throw Bad("has no file_name (the file, relative to dataset_dir)");
        if (entry.TryGetProperty("num_samples", out var ns) && ns.ValueKind != JsonValueKind.Null)
            throw Bad("num_samples (random sub-sampling) is not supported; use max_samples (the first N examples)");

        var formatting = OptionalString(entry, "formatting", Bad) ?? "alpaca";
        if (formatting is not ("alpaca" or "sharegpt" or "openai"))
            throw Bad($"formatting '{formatting}' is not one of alpaca, sharegpt, openai");
        bool ranking = entry.TryGetProperty("ranking", out var r) && r.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw Bad("ranking must be true or false"),
        };

        var columns = new DatasetColumns();
        columns = Map(columns, entry, "columns", DatasetColumns.ColumnKeys, Bad);
        columns = Map(columns, entry, "tags", DatasetColumns.TagKeys, Bad);
        if (ranking) columns = columns with { Chosen = columns.Chosen ?? "chosen", Rejected = columns.Rejected ?? "rejected" };

        var path = Path.GetFullPath(fileEl.GetString()!, datasetDir);
        if (Directory.Exists(path)) throw Bad($"file_name '{path}' is a folder; point it at a .json/.jsonl file");
        if (!File.Exists(path)) throw Bad($"file '{path}' not found");
        return new DatasetSource(name, path, formatting == "alpaca" ? "alpaca" : "sharegpt", ranking, columns);
    }

    private static DatasetColumns Map(DatasetColumns columns, JsonElement entry, string group, string[] keys, Func<string, DatasetException> bad)
    {
        if (!entry.TryGetProperty(group, out var map) || map.ValueKind == JsonValueKind.Null) return columns;
        if (map.ValueKind != JsonValueKind.Object) throw bad($"{group} must be an object");
        foreach (var p in map.EnumerateObject())
        {
            if (DatasetColumns.MultimodalKeys.Contains(p.Name))
                throw bad($"{group}.{p.Name}: images, videos and audios are not supported (text models only)");
            if (!keys.Contains(p.Name))
                throw bad($"{group}.{p.Name} is not one of {string.Join(", ", keys)}");
            if (p.Value.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                throw bad($"{group}.{p.Name} must be a column name (a string)");
            columns = columns.With(p.Name, p.Value.GetString());
        }
        return columns;
    }

    private static string? OptionalString(JsonElement entry, string key, Func<string, DatasetException> bad) =>
        !entry.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString() : throw bad($"{key} must be a string");

    private static DatasetNameException Error(string item, string message) => new($"'{item}' {message}");
}
