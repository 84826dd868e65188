using System.Text;
using System.Text.Json;

namespace LongSeqService.Shared.Datasets;

/// <summary>
/// Checks a whole dataset file in LLaMA-Factory's formats before anything trains on it: a JSON array of
/// examples or JSON lines (told apart by the first character, as Hugging Face's json loader does, so a
/// .json file may hold lines). Every example must have the one format of the file (alpaca or sharegpt,
/// detected from the first example unless given) and agree on preference (chosen/rejected) or not.
/// Where LLaMA-Factory drops a broken example with a warning, this refuses the file and names the line.
/// </summary>
public static class DatasetInspector
{
    public const int MaxReportedErrors = 10;

    public static DatasetReport Inspect(string path, string? formatting = null)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".json" or ".jsonl"))
            return Fail(1, $"unsupported file type '{ext}': upload a .json (array of examples) or .jsonl (one example per line) file");
        var bytes = File.ReadAllBytes(path);
        return Inspect(bytes, formatting);
    }

    public static DatasetReport Inspect(byte[] bytes, string? formatting = null)
    {
        if (formatting is not (null or DatasetFormats.Alpaca or DatasetFormats.ShareGpt))
            return Fail(1, $"formatting '{formatting}' is not one of alpaca, sharegpt");
        var state = new State(formatting);
        var span = bytes.AsSpan();
        if (span.StartsWith(Encoding.UTF8.Preamble)) span = span[3..];
        int first = 0;
        while (first < span.Length && span[first] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') first++;
        if (first == span.Length) return Fail(1, "the file is empty");
        if (span[first] == (byte)'[') ReadArray(span, state);
        else ReadLines(span, state);
        if (state.Rows == 0 && state.ErrorCount == 0) state.Error(1, null, "the file holds no examples");
        return new DatasetReport(state.Format, state.Preference ?? false, state.Rows, state.Errors, state.ErrorCount, LengthStats.From(state.Lengths));
    }

    private static DatasetReport Fail(int line, string message) => new(null, false, 0, [new DatasetLineError(line, null, message)], 1, null);

    private static void ReadArray(ReadOnlySpan<byte> span, State state)
    {
        var reader = new Utf8JsonReader(span, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        int line = 1; long counted = 0;
        int LineAt(long index, ReadOnlySpan<byte> s)
        {
            line += s[(int)counted..(int)index].Count((byte)'\n');
            counted = index;
            return line;
        }
        try
        {
            reader.Read(); // [
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                int at = LineAt(reader.TokenStartIndex, span);
                using var doc = JsonDocument.ParseValue(ref reader);
                state.Example(doc.RootElement, at);
            }
            if (reader.TokenType != JsonTokenType.EndArray) state.Error(line, null, "the JSON array is not closed (the file may be cut short)");
        }
        catch (JsonException e)
        {
            state.Error((int)(e.LineNumber ?? 0) + 1, null, "not valid JSON: " + Clean(e.Message));
        }
    }

    private static void ReadLines(ReadOnlySpan<byte> span, State state)
    {
        int line = 0;
        foreach (var range in span.Split((byte)'\n'))
        {
            line++;
            var text = span[range].TrimEnd((byte)'\r');
            if (text.Trim(" \t"u8).IsEmpty) continue;
            try
            {
                using var doc = JsonDocument.Parse(text.ToArray());
                state.Example(doc.RootElement, line);
            }
            catch (JsonException e)
            {
                state.Error(line, state.Rows, "not valid JSON: " + Clean(e.Message));
                state.Rows++;
            }
        }
    }

    private static string Clean(string message)
    {
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    /// <summary>Accumulates what the examples so far say about the file.</summary>
    private sealed class State(string? formatting)
    {
        public string? Format = formatting;
        public bool? Preference;
        public int Rows;
        public int ErrorCount;
        public readonly List<DatasetLineError> Errors = [];
        public readonly List<int> Lengths = [];

        public void Error(int line, int? row, string message)
        {
            ErrorCount++;
            if (Errors.Count < MaxReportedErrors) Errors.Add(new DatasetLineError(line, row, message));
        }

        public void Example(JsonElement e, int line)
        {
            int row = Rows++;
            if (e.ValueKind != JsonValueKind.Object) { Error(line, row, $"expected an object (one example), got {Kind(e)}"); return; }
            var detected = Detect(e, out var detectError);
            if (detected == null) { Error(line, row, detectError!); return; }
            Format ??= detected;
            if (detected != Format) { Error(line, row, $"this example is {detected} but the file is {Format}; one file holds one format"); return; }
            bool pref = e.TryGetProperty("chosen", out _) || e.TryGetProperty("rejected", out _);
            Preference ??= pref;
            if (pref != Preference)
            {
                Error(line, row, Preference.Value ? "missing chosen/rejected: the file is preference data, so every example needs both"
                                                  : "has chosen/rejected but earlier examples do not; one file is either preference data or not");
                return;
            }
            var problem = Format == DatasetFormats.Alpaca ? ExampleRules.CheckAlpaca(e, pref) : ExampleRules.CheckShareGpt(e, pref);
            if (problem != null) { Error(line, row, problem); return; }
            Lengths.Add(ExampleRules.TextLength(e));
        }

        private static string? Detect(JsonElement e, out string? error)
        {
            error = null;
            if (e.TryGetProperty("conversations", out _) || e.TryGetProperty("messages", out _)) return DatasetFormats.ShareGpt;
            if (e.TryGetProperty("instruction", out _)) return DatasetFormats.Alpaca;
            error = e.TryGetProperty("text", out _)
                ? "plain-text pre-training data (\"text\") is not supported yet (stage pt); use alpaca (instruction/output) or sharegpt (conversations)"
                : "cannot tell the format: expected instruction and output (alpaca) or conversations / messages (sharegpt); keys here: " +
                  string.Join(", ", e.EnumerateObject().Select(p => p.Name).Take(8));
            return null;
        }
    }

    internal static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
