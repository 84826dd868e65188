using LongSeqService.Shared.Data;

namespace LongSeqService.Shared.Datasets;

/// <summary>
/// The API's whole-file check of an upload: the trainer's own <see cref="DatasetLoader"/> (so a file the
/// API accepts is a file a run can train on, and the errors are the same, with line numbers), plus the
/// figures the API shows — rows, format, preference or not, and character lengths.
/// </summary>
public static class DatasetInspector
{
    public const int MaxReportedErrors = 10;

    public static DatasetReport Inspect(string path, string? formatting = null)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".json" or ".jsonl"))
            return Fail(1, $"unsupported file type '{ext}': upload a .json (array of examples) or .jsonl (one example per line) file");
        return Inspect(File.ReadAllBytes(path), formatting);
    }

    public static DatasetReport Inspect(byte[] bytes, string? formatting = null)
    {
        if (formatting is not (null or DatasetFormats.Alpaca or DatasetFormats.ShareGpt))
            return Fail(1, $"formatting '{formatting}' is not one of alpaca, sharegpt");
        try
        {
            var dataset = DatasetLoader.Load(bytes, "dataset", formatting, MaxReportedErrors);
            var lengths = dataset.Examples.Select(TextLength).ToList();
            return new DatasetReport(Name(dataset.Format), dataset.IsPreference, dataset.Count, [], 0, LengthStats.From(lengths));
        }
        catch (DatasetException e)
        {
            var errors = e.Errors.Select(x => new DatasetLineError(Math.Max(1, x.Line), null, x.Message)).ToList();
            return new DatasetReport(e.DetectedFormat is { } f ? Name(f) : null, e.IsPreference, e.Rows, errors, e.TotalErrors, null);
        }
    }

    private static string Name(DatasetFormat f) => f switch
    {
        DatasetFormat.Alpaca => DatasetFormats.Alpaca,
        DatasetFormat.Sharegpt => DatasetFormats.ShareGpt,
        _ => DatasetFormats.Text,
    };

    private static DatasetReport Fail(int line, string message) => new(null, false, 0, [new DatasetLineError(line, null, message)], 1, null);

    /// <summary>Characters of all the text an example holds: system prompt, tools, turns and answers.</summary>
    private static int TextLength(Example e) =>
        e.System.Length + e.Tools.Length + e.Turns.Sum(t => t.Content.Length) + (e.Chosen?.Content.Length ?? 0) + (e.Rejected?.Content.Length ?? 0);
}
