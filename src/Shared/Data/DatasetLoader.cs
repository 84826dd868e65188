using System.Text.Json;

namespace LongSeqService.Shared.Data;

/// <summary>
/// Loads a dataset file in LLaMA-Factory's alpaca or sharegpt format (<c>.json</c> array or <c>.jsonl</c>),
/// detects the format and whether it is preference data, and validates every example. Problems are
/// reported in one <see cref="DatasetException"/> naming the file and the line of each bad example
/// (the first <see cref="MaxReportedErrors"/>, plus a count of the rest).
/// </summary>
public static class DatasetLoader
{
    public const int MaxReportedErrors = 5;

    /// <param name="formatting"><c>alpaca</c>, <c>sharegpt</c>, or null/empty to detect from the first example.</param>
    public static LoadedDataset Load(string path, string? formatting = null, int maxReportedErrors = MaxReportedErrors)
    {
        if (!File.Exists(path))
            throw new DatasetException(path, [new DatasetError(0, "file not found")], 1);
        return Load(File.ReadAllBytes(path), path, formatting, maxReportedErrors);
    }

    /// <summary>The same checks over a file's bytes; <paramref name="name"/> names it in messages.</summary>
    public static LoadedDataset Load(byte[] bytes, string name, string? formatting = null, int maxReportedErrors = MaxReportedErrors)
    {
        var path = name;
        var rows = JsonRows.Read(bytes, name);
        if (rows.Count == 0)
            throw new DatasetException(path, [new DatasetError(0, "contains no examples")], 1);

        var first = rows.FirstOrDefault(r => r.ParseError is null && r.Element.ValueKind == JsonValueKind.Object);
        var format = ResolveFormat(path, rows, first, formatting);
        // Preference data is recognised by its first example; every other example must then agree.
        var preference = first is not null && IsPreferenceRow(first.Element);

        var examples = new List<Example>(rows.Count);
        var errors = new List<DatasetError>();
        int total = 0;
        foreach (var row in rows)
        {
            string? error = row.ParseError;
            Example? ex = null;
            if (error is null)
            {
                ex = format == DatasetFormat.Alpaca
                    ? ExampleParser.ParseAlpaca(row.Element, preference, row.Line, out error)
                    : ExampleParser.ParseSharegpt(row.Element, preference, row.Line, out error);
                if (error is not null) error = $"example {row.Index + 1} {error}";
            }
            if (error is not null)
            {
                total++;
                if (errors.Count < maxReportedErrors) errors.Add(new DatasetError(row.Line, error));
            }
            else examples.Add(ex!);
        }
        if (total > 0) throw new DatasetException(path, errors, total, rows.Count, format, preference);
        return new LoadedDataset(path, format, preference, examples);
    }

    private static DatasetFormat ResolveFormat(string path, IReadOnlyList<JsonRow> rows, JsonRow? first, string? formatting)
    {
        DatasetFormat? detected = first is null ? null : Detect(first.Element);

        if (string.IsNullOrEmpty(formatting))
        {
            if (detected is null && first is not null && first.Element.TryGetProperty("text", out _))
                throw new DatasetException(path, [new DatasetError(first.Line,
                    "plain-text pre-training data (\"text\") is not supported yet (stage pt); use alpaca (instruction/output) or sharegpt (conversations)")], 1);
            return detected ?? throw new DatasetException(path,
                [new DatasetError(first?.Line ?? rows[0].Line,
                    $"cannot tell the format of example {(first?.Index ?? 0) + 1}{KeysOf(first)}: alpaca needs 'instruction' and 'output', " +
                    "sharegpt needs 'conversations' (from/value) or 'messages' (role/content)")], 1);
        }
        return formatting.ToLowerInvariant() switch
        {
            "alpaca" => DatasetFormat.Alpaca,
            "sharegpt" => DatasetFormat.Sharegpt,
            _ => throw new ArgumentException($"formatting '{formatting}' is not supported; use 'alpaca' or 'sharegpt'", nameof(formatting)),
        };
    }

    private static DatasetFormat? Detect(JsonElement e) =>
        e.TryGetProperty("conversations", out _) || e.TryGetProperty("messages", out _) ? DatasetFormat.Sharegpt
        : e.TryGetProperty("instruction", out _) || e.TryGetProperty("output", out _) ? DatasetFormat.Alpaca
        : null;

    private static bool IsPreferenceRow(JsonElement e) =>
        e.ValueKind == JsonValueKind.Object && (e.TryGetProperty("chosen", out _) || e.TryGetProperty("rejected", out _));

    private static string KeysOf(JsonRow? row) =>
        row is null ? "" : $" (keys: {string.Join(", ", row.Element.EnumerateObject().Select(p => p.Name))})";
}
