using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Data;

/// <summary>One tool call: the function's name and its arguments (a JSON value, usually an object).</summary>
public sealed record FunctionCall(string Name, JsonNode? Arguments);

/// <summary>
/// Parses the content of a function_call turn the way LLaMA-Factory's <c>FunctionFormatter</c> does:
/// a JSON object <c>{"name": ..., "arguments": ...}</c>, or a list of them for parallel calls.
/// </summary>
public static class FunctionCalls
{
    public static bool TryParse(string content, out List<FunctionCall> calls, out string? why)
    {
        calls = [];
        why = null;
        JsonNode? root;
        try { root = JsonNode.Parse(content); }
        catch (JsonException ex) { why = "invalid JSON (" + ex.Message.Split(" LineNumber")[0] + ")"; return false; }

        var items = root is JsonArray a ? a.ToList() : [root];
        foreach (var item in items)
        {
            if (item is not JsonObject o || o["name"] is not JsonValue nameNode || !nameNode.TryGetValue<string>(out var name))
            { why = "each call needs a string 'name'"; return false; }
            if (!o.ContainsKey("arguments")) { why = $"call '{name}' has no 'arguments'"; return false; }
            calls.Add(new FunctionCall(name, o["arguments"]?.DeepClone()));
        }
        if (calls.Count == 0) { why = "empty list of calls"; return false; }
        return true;
    }
}
