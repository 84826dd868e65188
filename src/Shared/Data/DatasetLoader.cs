using System.Text.Json;

namespace LongSeqService.Shared.Data;

/// <summary>
/// Loads a dataset file in LLaMA-Factory's alpaca or sharegpt format, or pre-training text (<c>.json</c>
/// array or <c>.jsonl</c>), with the columns of its dataset_info.json entry or detected, and validates
/// every example. Problems are reported in one <see cref="DatasetException"/> naming the file and the
/// line of each bad example (the first <see cref="MaxReportedErrors"/>, plus a count of the rest).
/// </summary>
public static class DatasetLoader
{
    public const int MaxReportedErrors = 5;

    /// <param name="formatting"><c>alpaca</c>, <c>sharegpt</c>, or null/empty to detect from the first example.</param>
    public static LoadedDataset Load(string path, string? formatting = null, int maxReportedErrors = MaxReportedErrors) =>
        Load(DatasetSource.File(path, formatting), pretrain: false, maxReportedErrors);

    /// <param name="pretrain">Read every example as one document (stage pt), whatever its format.</param>
    public static LoadedDataset Load(DatasetSource source, bool pretrain, int maxReportedErrors = MaxReportedErrors)
    {
        if (!File.Exists(source.Path))
            throw new DatasetException(source.Path, [new DatasetError(0, "file not found")], 1);
        return Load(File.ReadAllBytes(source.Path), source.Path, source.Formatting, maxReportedErrors, source.Columns, source.Ranking, pretrain);
    }

    /// <summary>The same checks over a file's bytes; <paramref name="name"/> names it in messages.</summary>
    public static LoadedDataset Load(byte[] bytes, string name, string? formatting = null, int maxReportedErrors = MaxReportedErrors,
        DatasetColumns? columns = null, bool? ranking = null, bool pretrain = false)
    {
        var path = name;
        columns ??= DatasetColumns.Detected;
        var rows = JsonRows.Read(bytes, name);
        if (rows.Count == 0)
            throw new DatasetException(path, [new DatasetError(0, "contains no examples")], 1);

        var first = rows.FirstOrDefault(r => r.ParseError is null && r.Element.ValueKind == JsonValueKind.Object);
        var format = ResolveFormat(path, rows, first, formatting);
        // Preference data is recognised by its first example (or an entry's ranking); every other example must then agree.
        var preference = !pretrain && format != DatasetFormat.Text && (ranking ?? (first is not null && IsPreferenceRow(first.Element)));
        var documents = pretrain || format == DatasetFormat.Text;

        var examples = new List<Example>(rows.Count);
        var errors = new List<DatasetError>();
        int total = 0;
        foreach (var row in rows)
        {
            string? error = row.ParseError;
            Example? ex = null;
            if (error is null)
            {
                ex = documents ? ExampleParser.ParseText(row.Element, format, columns, row.Line, out error)
                    : format == DatasetFormat.Alpaca ? ExampleParser.ParseAlpaca(row.Element, preference, columns, row.Line, out error)
                    : ExampleParser.ParseSharegpt(row.Element, preference, columns, row.Line, out error);
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
        return new LoadedDataset(path, format, preference, examples) { IsText = documents };
    }

    private static DatasetFormat ResolveFormat(string path, IReadOnlyList<JsonRow> rows, JsonRow? first, string? formatting)
    {
        DatasetFormat? detected = first is null ? null : Detect(first.Element);

        if (string.IsNullOrEmpty(formatting))
        {
            return detected ?? throw new DatasetException(path,
                [new DatasetError(first?.Line ?? rows[0].Line,
                    $"cannot tell the format of example {(first?.Index ?? 0) + 1}{KeysOf(first)}: alpaca needs 'instruction' and 'output', " +
                    "sharegpt needs 'conversations' (from/value) or 'messages' (role/content), pre-training text needs 'text'")], 1);
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
        : e.TryGetProperty(DatasetColumns.TextColumn, out _) ? DatasetFormat.Text
        : null;

    private static bool IsPreferenceRow(JsonElement e) =>
        e.ValueKind == JsonValueKind.Object && (e.TryGetProperty("chosen", out _) || e.TryGetProperty("rejected", out _));

    private static string KeysOf(JsonRow? row) =>
        row is null ? "" : $" (keys: {string.Join(", ", row.Element.EnumerateObject().Select(p => p.Name))})";
}
