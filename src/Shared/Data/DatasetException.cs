namespace LongSeqService.Shared.Data;

/// <summary>One thing wrong with a dataset file. <see cref="Line"/> is 1-based; 0 when not tied to a line.</summary>
public sealed record DatasetError(int Line, string Message);

/// <summary>
/// A dataset file that cannot be used. The message names the file and the line of each problem
/// ("identity.json: line 12: example 3 has no 'output' ..."); <see cref="Errors"/> lists the first few
/// problems for callers that report them field by field, <see cref="TotalErrors"/> counts all of them.
/// </summary>
public sealed class DatasetException : Exception
{
    public DatasetException(string file, IReadOnlyList<DatasetError> errors, int totalErrors, int rows = 0,
        DatasetFormat? format = null, bool isPreference = false)
        : base(Format(file, errors, totalErrors))
    {
        File = file;
        Errors = errors;
        TotalErrors = totalErrors;
        Rows = rows;
        DetectedFormat = format;
        IsPreference = isPreference;
    }

    /// <summary>The format the file was read as, when it got that far.</summary>
    public DatasetFormat? DetectedFormat { get; }
    public bool IsPreference { get; }

    /// <summary>Examples read before the file was refused (all of them when only some were bad).</summary>
    public int Rows { get; }

    public string File { get; }
    public IReadOnlyList<DatasetError> Errors { get; }
    public int TotalErrors { get; }

    private static string Format(string file, IReadOnlyList<DatasetError> errors, int total)
    {
        var name = Path.GetFileName(file);
        var lines = errors.Select(e => e.Line > 0 ? $"{name}: line {e.Line}: {e.Message}" : $"{name}: {e.Message}").ToList();
        if (total > errors.Count) lines.Add($"{name}: ... and {total - errors.Count} more problem(s)");
        return string.Join("\n", lines);
    }
}

/// <summary>A <c>dataset</c> item that names no dataset: neither a dataset_info.json name nor a file.</summary>
public sealed class DatasetNameException(string message) : Exception(message);
