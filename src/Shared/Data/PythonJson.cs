using System.Text;
using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Data;

/// <summary>
/// JSON text exactly as Python's <c>json.dumps(obj, ensure_ascii=False[, indent=n])</c> writes it —
/// separators ", " and ": " (or "," + newline with an indent), non-ASCII kept, only quote, backslash and
/// control characters escaped — because LLaMA-Factory's tool prompts and function calls are made with it
/// and the model should see the same text. Numbers are written as they appear in the source JSON
/// (Python would re-render e.g. <c>1e3</c> as <c>1000.0</c>; such numbers are rare in tool data).
/// </summary>
public static class PythonJson
{
    public static string Dumps(JsonNode? node, int? indent = null)
    {
        var sb = new StringBuilder();
        Write(sb, node, indent, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JsonNode? node, int? indent, int depth)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                break;
            case JsonObject o:
                if (o.Count == 0) { sb.Append("{}"); break; }
                sb.Append('{');
                int i = 0;
                foreach (var (key, value) in o)
                {
                    Separator(sb, indent, depth + 1, i++ == 0);
                    WriteString(sb, key);
                    sb.Append(": ");
                    Write(sb, value, indent, depth + 1);
                }
                Close(sb, indent, depth);
                sb.Append('}');
                break;
            case JsonArray a:
                if (a.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int k = 0; k < a.Count; k++)
                {
                    Separator(sb, indent, depth + 1, k == 0);
                    Write(sb, a[k], indent, depth + 1);
                }
                Close(sb, indent, depth);
                sb.Append(']');
                break;
            case JsonValue v when v.TryGetValue<string>(out var s):
                WriteString(sb, s);
                break;
            default:
                sb.Append(node.ToJsonString()); // numbers and booleans: true/false/123 as written
                break;
        }
    }

    private static void Separator(StringBuilder sb, int? indent, int depth, bool first)
    {
        if (indent is { } n) sb.Append(first ? "\n" : ",\n").Append(' ', n * depth);
        else if (!first) sb.Append(", ");
    }

    private static void Close(StringBuilder sb, int? indent, int depth)
    {
        if (indent is { } n) sb.Append('\n').Append(' ', n * depth);
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
