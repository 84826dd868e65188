using System.Text.Json;

namespace LongSeqService.Shared.Data;

/// <summary>One top-level element of a dataset file, with the 1-based line it starts on.</summary>
internal sealed record JsonRow(int Index, int Line, JsonElement Element, string? ParseError = null);

/// <summary>
/// Reads the rows of a <c>.json</c> array or a <c>.jsonl</c> file, keeping line numbers for error
/// messages. A JSON array is walked with <see cref="Utf8JsonReader"/> so each element's starting line is
/// known; a malformed array stops the read (nothing after the error can be trusted), whereas a malformed
/// <c>.jsonl</c> line is recorded on its row and the other lines are still read.
/// </summary>
internal static class JsonRows
{
    private static readonly JsonReaderOptions ReaderOptions = new()
    { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    public static List<JsonRow> Read(string path) => Read(File.ReadAllBytes(path), path);

    /// <summary>A JSON array or JSON lines, told apart by the first character whatever the file is called
    /// (as Hugging Face's json loader does: a .json file may hold one example per line).</summary>
    public static List<JsonRow> Read(byte[] bytes, string name)
    {
        int start = bytes.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0;
        var content = bytes.AsMemory(start);
        var firstChar = content.Span.TrimStart(" \t\r\n"u8);
        bool isArray = firstChar.Length > 0 && firstChar[0] == (byte)'[';
        return isArray ? ReadArray(name, content) : ReadLines(content);
    }

    private static List<JsonRow> ReadArray(string path, ReadOnlyMemory<byte> content)
    {
        var rows = new List<JsonRow>();
        var span = content.Span;
        var reader = new Utf8JsonReader(span, ReaderOptions);
        int line = 1;
        long counted = 0; // bytes already scanned for newlines
        try
        {
            if (!reader.Read())
                return rows;
            if (reader.TokenType != JsonTokenType.StartArray)
                throw new DatasetException(path, [new DatasetError(1, "a .json dataset must be a JSON array of examples ([{...}, {...}]); for one example per line, name the file .jsonl")], 1);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                var at = reader.TokenStartIndex;
                line += span[(int)counted..(int)at].Count((byte)'\n');
                counted = at;
                using var doc = JsonDocument.ParseValue(ref reader);
                rows.Add(new JsonRow(rows.Count, line, doc.RootElement.Clone()));
            }
            if (reader.Read())
                throw new DatasetException(path,
                    [new DatasetError(CountLines(span, reader.TokenStartIndex), "unexpected content after the closing ']' of the array")], 1);
        }
        catch (JsonException ex)
        {
            throw new DatasetException(path, [new DatasetError((int)(ex.LineNumber ?? 0) + 1, "malformed JSON: " + Clean(ex.Message))], 1);
        }
        return rows;
    }

    private static List<JsonRow> ReadLines(ReadOnlyMemory<byte> content)
    {
        var rows = new List<JsonRow>();
        int lineNo = 0, pos = 0;
        while (pos < content.Length)
        {
            lineNo++;
            int nl = content.Span[pos..].IndexOf((byte)'\n');
            int end = nl < 0 ? content.Length : pos + nl;
            var line = content[pos..end];
            pos = end + 1;
            if (line.Span.Trim(" \t\r"u8).IsEmpty) continue;
            try
            {
                using var doc = JsonDocument.Parse(line, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip });
                rows.Add(new JsonRow(rows.Count, lineNo, doc.RootElement.Clone()));
            }
            catch (JsonException ex)
            {
                rows.Add(new JsonRow(rows.Count, lineNo, default, "malformed JSON: " + Clean(ex.Message)));
            }
        }
        return rows;
    }

    private static int CountLines(ReadOnlySpan<byte> span, long upTo) => span[..(int)upTo].Count((byte)'\n') + 1;

    // System.Text.Json appends " LineNumber: 3 | BytePositionInLine: 7." — we report the line ourselves.
    private static string Clean(string message)
    {
        int i = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        var s = i >= 0 ? message[..i] : message;
        int p = message.IndexOf("BytePositionInLine: ", StringComparison.Ordinal);
        if (p >= 0 && int.TryParse(message[(p + 20)..].TrimEnd('.', ' '), out var col)) s += $" (column {col + 1})";
        return s.TrimEnd();
    }
}
