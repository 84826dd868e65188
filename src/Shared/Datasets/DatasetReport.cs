namespace LongSeqService.Shared.Datasets;

public static class DatasetFormats
{
    public const string Alpaca = "alpaca";
    public const string ShareGpt = "sharegpt";
    /// <summary>Pre-training documents (a <c>text</c> per example), for stage pt.</summary>
    public const string Text = "text";

    /// <summary>Every format, as the job spec's <c>formatting</c> accepts them.</summary>
    public static IReadOnlyList<string> Names { get; } = [Alpaca, ShareGpt, Text];
}

/// <summary>A bad example: the 1-based line where it starts, its 0-based row, and what is wrong.</summary>
/// <param name="Line">The 1-based line where the example starts.</param>
/// <param name="Row">Its 0-based row, when the file parsed that far.</param>
/// <param name="Message">What is wrong and what would work.</param>
public sealed record DatasetLineError(int Line, int? Row, string Message)
{
    public override string ToString() => $"line {Line}" + (Row is { } r ? $" (row {r})" : "") + $": {Message}";
}

/// <summary>Length of an example in characters (all of its text), over the whole file.</summary>
/// <param name="Min">The shortest.</param>
/// <param name="Mean">The mean.</param>
/// <param name="P50">The median.</param>
/// <param name="P95">The 95th percentile.</param>
/// <param name="Max">The longest.</param>
public sealed record LengthStats(int Min, double Mean, int P50, int P95, int Max)
{
    public static LengthStats? From(List<int> lengths)
    {
        if (lengths.Count == 0) return null;
        var s = lengths.Order().ToArray();
        int At(double q) => s[Math.Min(s.Length - 1, (int)Math.Floor(q * (s.Length - 1) + 0.5))];
        return new LengthStats(s[0], Math.Round(s.Average(), 1), At(0.5), At(0.95), s[^1]);
    }
}

/// <summary>What a whole-file check found: the format, whether it is preference data (chosen/rejected),
/// the row count, and the first bad lines (<see cref="ErrorCount"/> counts all of them).</summary>
public sealed record DatasetReport(string? Format, bool IsPreference, int Rows, IReadOnlyList<DatasetLineError> Errors, int ErrorCount, LengthStats? CharLength)
{
    public bool IsValid => ErrorCount == 0 && Rows > 0 && Format != null;
}
