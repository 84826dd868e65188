using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Datasets;

namespace LongSeqService.Api.OpenAi;

/// <summary>
/// OpenAI's fine-tuning JSONL into our sharegpt JSONL, one line for one line, so every error the dataset check
/// reports afterwards names the line of the file as uploaded:
/// <list type="bullet">
/// <item>chat (supervised) <c>{"messages": [{role, content}, …], "tools": …}</c> is sharegpt already; content given as
/// parts (<c>[{"type": "text", "text": …}]</c>) is joined into one string, and an assistant message's <c>weight</c> is
/// checked (1 is what we do; 0, "do not learn this message", we cannot honour, so it is refused);</item>
/// <item>preference (DPO) <c>{"input": {"messages", "tools"}, "preferred_output": [msg], "non_preferred_output": [msg]}</c>
/// becomes <c>{"messages", "tools", "chosen", "rejected"}</c>.</item>
/// </list>
/// A line that is not JSON is passed on as it is: the dataset check reports it, in its own words.
/// </summary>
public static class OpenAiJsonl
{
    public sealed record Result(byte[] Bytes, bool IsPreference, IReadOnlyList<DatasetLineError> Errors, int ErrorCount);

    private static readonly string[] PreferenceKeys = ["input", "preferred_output", "non_preferred_output"];

    public static Result Convert(byte[] original)
    {
        var output = new MemoryStream(original.Length + 64);
        var errors = new List<DatasetLineError>();
        int errorCount = 0, row = 0;
        bool? preference = null;
        var lines = original.AsSpan();
        if (lines.StartsWith("\uFEFF"u8)) lines = lines[3..];
        for (int lineNo = 1; !lines.IsEmpty; lineNo++)
        {
            int nl = lines.IndexOf((byte)'\n');
            var line = nl < 0 ? lines : lines[..nl];
            lines = nl < 0 ? [] : lines[(nl + 1)..];
            JsonObject? example = null;
            if (!line.Trim(" \t\r"u8).IsEmpty)
                try { example = JsonNode.Parse(line) as JsonObject; } catch (JsonException) { }
            if (example == null) { output.Write(line); output.WriteByte((byte)'\n'); continue; }

            bool isPreference = PreferenceKeys.Any(example.ContainsKey);
            preference ??= isPreference;
            string? error = preference != isPreference
                ? $"is a {Kind(isPreference)} example but the first example is a {Kind(preference.Value)} one; a file holds one kind"
                : null;
            var converted = error == null ? (isPreference ? Preference(example, out error) : Chat(example, out error)) : null;
            if (error != null)
            {
                if (++errorCount <= DatasetInspector.MaxReportedErrors) errors.Add(new DatasetLineError(lineNo, row, error));
                converted = example;
            }
            output.Write(Encoding.UTF8.GetBytes(converted!.ToJsonString()));
            output.WriteByte((byte)'\n');
            row++;
        }
        return new Result(output.ToArray(), preference == true, errors, errorCount);
    }

    private static string Kind(bool preference) => preference ? "preference (input/preferred_output/non_preferred_output)" : "chat (messages)";

    private static JsonObject? Chat(JsonObject e, out string? error)
    {
        if (e["messages"] is not JsonArray messages) { error = "has no 'messages' list (a chat example is {\"messages\": [{\"role\": …, \"content\": …}, …]})"; return null; }
        var result = new JsonObject { ["messages"] = Messages(messages, "messages", out error) };
        if (error != null) return null;
        if (e["tools"] is { } tools) result["tools"] = tools.DeepClone();
        return result;
    }

    private static JsonObject? Preference(JsonObject e, out string? error)
    {
        error = null;
        if (e["input"] is not JsonObject input || input["messages"] is not JsonArray messages)
        { error = "has no 'input' with a 'messages' list (a preference example is {\"input\": {\"messages\": […]}, \"preferred_output\": […], \"non_preferred_output\": […]})"; return null; }
        var result = new JsonObject { ["messages"] = Messages(messages, "input.messages", out error) };
        if (error != null) return null;
        if (input["tools"] is { } tools) result["tools"] = tools.DeepClone();
        foreach (var (key, ours) in new[] { ("preferred_output", "chosen"), ("non_preferred_output", "rejected") })
        {
            if (e[key] is not JsonArray { Count: 1 } answer || answer[0] is not JsonObject { } message || Str(message["role"]) != "assistant")
            { error = $"needs '{key}' to be a list of exactly one assistant message"; return null; }
            result[ours] = Messages(answer, key, out error)![0]!.DeepClone();
            if (error != null) return null;
        }
        return result;
    }

    private static string? Str(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>The messages with content parts joined into strings and <c>weight</c> checked and dropped.</summary>
    private static JsonArray? Messages(JsonArray messages, string where, out string? error)
    {
        error = null;
        var result = new JsonArray();
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject m) { error = $"has {where}[{i}] that is not an object"; return null; }
            var copy = (JsonObject)m.DeepClone();
            if (copy["weight"] is { } weight)
            {
                if (weight.GetValueKind() != JsonValueKind.Number || weight.GetValue<double>() is not (0 or 1)) { error = $"has {where}[{i}].weight that is not 0 or 1"; return null; }
                if (weight.GetValue<double>() == 0) { error = $"has {where}[{i}] with weight 0; every assistant message is trained here: remove that message or its weight"; return null; }
                copy.Remove("weight");
            }
            if (copy["content"] is JsonArray parts)
            {
                var text = new StringBuilder();
                foreach (var part in parts)
                {
                    if (part is not JsonObject p || Str(p["type"]) != "text" || Str(p["text"]) == null)
                    { error = $"has {where}[{i}].content with a part that is not {{\"type\": \"text\", \"text\": …}} (only text is trained)"; return null; }
                    text.Append(Str(p["text"]));
                }
                copy["content"] = text.ToString();
            }
            result.Add(copy);
        }
        return result;
    }
}
