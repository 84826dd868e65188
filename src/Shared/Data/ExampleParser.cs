using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Data;

/// <summary>
/// Turns one JSON example into an <see cref="Example"/>, following LLaMA-Factory's converters
/// (<c>AlpacaDatasetConverter</c>, <c>SharegptDatasetConverter</c>, <c>OpenAIDatasetConverter</c>).
/// Where LLaMA-Factory silently skips a broken example, this reports it: the error text completes
/// "example N ..." and is null on success.
/// </summary>
internal static class ExampleParser
{
    private const string AlpacaNeeds = "(alpaca needs instruction and output)";
    private const string AlpacaPrefNeeds = "(preference alpaca needs instruction, chosen and rejected)";

    // ---- alpaca: instruction, input, output, system, history [[q, a], ...], chosen/rejected strings ----

    public static Example? ParseAlpaca(JsonElement e, bool preference, DatasetColumns c, int line, out string? error)
    {
        error = null;
        if (e.ValueKind != JsonValueKind.Object) { error = "is not a JSON object"; return null; }
        var needs = preference ? AlpacaPrefNeeds : AlpacaNeeds;

        if (!TryColumn(e, c, "prompt", c.Prompt, required: true, needs, out var instruction, out error)) return null;
        if (!TryColumn(e, c, "query", c.Query, required: false, needs, out var input, out error)) return null;
        if (!TryColumn(e, c, "system", c.System, required: false, needs, out var system, out error)) return null;
        if (!TryTools(e, c.Tools, out var tools, out error)) return null;

        var turns = new List<Turn>();
        if (c.History is { } historyKey && e.TryGetProperty(historyKey, out var history) && history.ValueKind != JsonValueKind.Null)
        {
            if (history.ValueKind != JsonValueKind.Array) { error = $"has a '{historyKey}' that is not a list of [question, answer] pairs"; return null; }
            int k = 0;
            foreach (var pair in history.EnumerateArray())
            {
                k++;
                if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2
                    || pair[0].ValueKind != JsonValueKind.String || pair[1].ValueKind != JsonValueKind.String)
                { error = $"has '{historyKey}' item {k} that is not a [question, answer] pair of strings"; return null; }
                turns.Add(new Turn(Role.User, pair[0].GetString()!));
                turns.Add(new Turn(Role.Assistant, pair[1].GetString()!));
            }
        }
        turns.Add(new Turn(Role.User, AlpacaQuery(instruction, input)));

        if (preference)
        {
            if (!TryColumn(e, c, "chosen", c.Chosen, required: true, needs, out var chosen, out error)) return null;
            if (!TryColumn(e, c, "rejected", c.Rejected, required: true, needs, out var rejected, out error)) return null;
            return new Example(system, tools, turns, new Turn(Role.Assistant, chosen), new Turn(Role.Assistant, rejected), line);
        }
        if (HasAnswerColumns(e, c))
        { error = "has 'chosen'/'rejected' but the first example is not preference data (all examples must be alike)"; return null; }
        if (!TryColumn(e, c, "response", c.Response, required: true, needs, out var output, out error)) return null;
        turns.Add(new Turn(Role.Assistant, output));
        return new Example(system, tools, turns, Line: line);
    }

    // LLaMA-Factory: the query is "instruction\ninput", leaving out whichever is empty.
    private static string AlpacaQuery(string instruction, string input) =>
        string.Join("\n", new[] { instruction, input }.Where(s => !string.IsNullOrEmpty(s)));

    // A detected file must not mix preference and supervised rows; an entry's ranking flag decides alone.
    private static bool HasAnswerColumns(JsonElement e, DatasetColumns c) =>
        c.IsDetected && (e.TryGetProperty("chosen", out _) || e.TryGetProperty("rejected", out _));

    // ---- pre-training text (stage pt): LLaMA-Factory trains on the first prompt message's content ----

    /// <summary>One document: a detected file's <c>text</c>, alpaca's "prompt\nquery" (c4_demo maps prompt to text),
    /// or the first sharegpt turn. Returned as an example of one user turn, the shape LLaMA-Factory gives it.</summary>
    public static Example? ParseText(JsonElement e, DatasetFormat format, DatasetColumns c, int line, out string? error)
    {
        error = null;
        if (e.ValueKind != JsonValueKind.Object) { error = "is not a JSON object"; return null; }
        string text;
        if (format == DatasetFormat.Text)
        {
            if (!TryColumn(e, c, "text", DatasetColumns.TextColumn, required: true, "(pre-training text needs 'text')", out text, out error)) return null;
        }
        else if (format == DatasetFormat.Alpaca)
        {
            if (!TryColumn(e, c, "prompt", c.Prompt, required: true, "(pre-training alpaca data needs 'instruction')", out var prompt, out error)) return null;
            if (!TryColumn(e, c, "query", c.Query, required: false, "", out var query, out error)) return null;
            text = AlpacaQuery(prompt, query);
        }
        else
        {
            var first = ParseSharegpt(e, preference: false, c, line, out error, requireAnswer: false);
            if (first is null) return null;
            text = first.Turns[0].Content;
        }
        return new Example("", "", [new Turn(Role.User, text)], Line: line);
    }

    // ---- sharegpt: conversations [{from, value}] or messages [{role, content}], tools, system, chosen/rejected ----

    public static Example? ParseSharegpt(JsonElement e, bool preference, DatasetColumns c, int line, out string? error, bool requireAnswer = true)
    {
        error = null;
        if (e.ValueKind != JsonValueKind.Object) { error = "is not a JSON object"; return null; }
        JsonElement messages = default;
        string key = c.IsDetected
            ? (e.TryGetProperty("conversations", out messages) ? "conversations" : e.TryGetProperty("messages", out messages) ? "messages" : "")
            : c.Messages is { } col && e.TryGetProperty(col, out messages) ? col : "";
        if (key == "")
        {
            error = c.IsDetected ? "has no 'conversations' or 'messages' (sharegpt needs a list of turns)"
                : $"has no '{c.Messages}'{c.Origin("messages", c.Messages ?? "")}";
            return null;
        }
        if (messages.ValueKind != JsonValueKind.Array) { error = $"has a '{key}' that is not a list of turns"; return null; }
        if (!TryColumn(e, c, "system", c.System, required: false, "", out var system, out error)) return null;
        if (!TryTools(e, c.Tools, out var tools, out error)) return null;

        var turns = new List<Turn>();
        int k = 0;
        foreach (var m in messages.EnumerateArray())
        {
            k++;
            var turn = ParseMessage(m, c, $"turn {k}", out var isSystem, out error);
            if (turn is null) return null;
            if (isSystem)
            {
                if (k != 1) { error = $"has a system turn at position {k}; only the first turn may be the system prompt"; return null; }
                system = turn.Content;
                continue;
            }
            // OpenAI style: several tool results in a row are one observation (LLaMA-Factory joins them).
            if (turn.Role == Role.Observation && turns.Count > 0 && turns[^1].Role == Role.Observation)
                turns[^1] = turns[^1] with { Content = turns[^1].Content + "\n</tool_response>\n<tool_response>\n" + turn.Content };
            else turns.Add(turn);
        }
        if (turns.Count == 0) { error = $"has no turns in '{key}'"; return null; }
        if (!requireAnswer) return new Example(system, tools, turns, Line: line);

        for (int i = 0; i < turns.Count; i++)
        {
            bool modelSlot = i % 2 == 1;
            if (turns[i].IsModelTurn != modelSlot)
            {
                error = $"has turn {i + 1} ({RoleName(turns[i].Role)}) where {(modelSlot ? "an assistant or function_call" : "a user or observation")} " +
                        "turn is expected (turns alternate, starting with the user)";
                return null;
            }
        }

        if (preference)
        {
            if (turns.Count % 2 == 0) { error = "has a conversation ending with an assistant turn; preference data ends with the user's turn and puts the answers in 'chosen' and 'rejected'"; return null; }
            var chosen = ParseAnswer(e, c, "chosen", c.Chosen, out error);
            if (chosen is null) return null;
            var rejected = ParseAnswer(e, c, "rejected", c.Rejected, out error);
            if (rejected is null) return null;
            return new Example(system, tools, turns, chosen, rejected, line);
        }
        if (HasAnswerColumns(e, c))
        { error = "has 'chosen'/'rejected' but the first example is not preference data (all examples must be alike)"; return null; }
        if (turns.Count % 2 == 1) { error = $"has its last turn from {RoleName(turns[^1].Role)}; a supervised conversation must end with an assistant turn"; return null; }
        return new Example(system, tools, turns, Line: line);
    }

    private static Turn? ParseAnswer(JsonElement e, DatasetColumns c, string role, string? column, out string? error)
    {
        error = null;
        var name = column ?? role;
        if (!e.TryGetProperty(name, out var a) || a.ValueKind == JsonValueKind.Null)
        {
            error = $"has no '{name}'" + (c.IsDetected ? " (preference sharegpt needs chosen and rejected answers)" : c.Origin(role, name));
            return null;
        }
        if (a.ValueKind == JsonValueKind.String) return new Turn(Role.Assistant, a.GetString()!);
        var turn = ParseMessage(a, c, $"'{name}'", out var isSystem, out error);
        if (turn is null) return null;
        if (isSystem || !turn.IsModelTurn)
        { error = $"has a '{name}' from {(isSystem ? "system" : RoleName(turn.Role))}; it must be an assistant or function_call answer"; return null; }
        return turn;
    }

    private static Turn? ParseMessage(JsonElement m, DatasetColumns c, string what, out bool isSystem, out string? error)
    {
        isSystem = false;
        error = null;
        if (m.ValueKind != JsonValueKind.Object) { error = $"has {what} that is not an object"; return null; }
        JsonElement roleEl;
        string contentKey;
        if (c.IsDetected)
        {
            bool openAi = !m.TryGetProperty("from", out roleEl);
            if (openAi && !m.TryGetProperty("role", out roleEl)) { error = $"has {what} with no 'from' (or 'role')"; return null; }
            contentKey = openAi ? "content" : "value";
        }
        else
        {
            if (!m.TryGetProperty(c.RoleTag, out roleEl)) { error = $"has {what} with no '{c.RoleTag}'{c.Origin("role_tag", c.RoleTag)}"; return null; }
            contentKey = c.ContentTag;
        }
        if (roleEl.ValueKind != JsonValueKind.String) { error = $"has {what} whose role is not a string"; return null; }
        var roleName = roleEl.GetString()!;
        m.TryGetProperty(contentKey, out var contentEl);

        Role? mapped = c.IsDetected ? DetectedRole(roleName, out isSystem) : TaggedRole(c, roleName, out isSystem);
        if (mapped is not { } role)
        {
            error = c.IsDetected
                ? $"has {what} with unknown role '{roleName}' (expected human, gpt, system, function_call, observation; or user, assistant, system, tool)"
                : $"has {what} with unknown role '{roleName}' (the tags expect {c.UserTag}, {c.AssistantTag}, {c.SystemTag}, {c.FunctionTag}, {c.ObservationTag})";
            return null;
        }

        if (role == Role.Assistant && m.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array && calls.GetArrayLength() > 0)
        {
            // OpenAI style: an assistant message with tool_calls is a function call.
            var list = new JsonArray();
            foreach (var call in calls.EnumerateArray())
            {
                var f = call.TryGetProperty("function", out var fn) ? fn : call;
                if (!f.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                { error = $"has {what} with a tool call that has no 'name'"; return null; }
                var args = f.TryGetProperty("arguments", out var a) ? a : default;
                // OpenAI sends arguments as a JSON string; keep the object it encodes.
                JsonNode? argsNode = args.ValueKind == JsonValueKind.String && TryParse(args.GetString()!, out var parsed) ? parsed
                    : args.ValueKind == JsonValueKind.Undefined ? new JsonObject() : JsonNode.Parse(args.GetRawText());
                list.Add(new JsonObject { ["name"] = name.GetString(), ["arguments"] = argsNode });
            }
            return new Turn(Role.FunctionCall, list.ToJsonString());
        }
        if (contentEl.ValueKind != JsonValueKind.String)
        {
            error = contentEl.ValueKind == JsonValueKind.Undefined
                ? $"has {what} with no '{contentKey}'{c.Origin("content_tag", contentKey)}"
                : $"has {what} whose '{contentKey}' is {Kind(contentEl)}, not a string";
            return null;
        }
        var content = contentEl.GetString()!;
        if (role == Role.FunctionCall && !FunctionCalls.TryParse(content, out _, out var why))
        { error = $"has {what} (function_call) that is not a JSON tool call: {why}"; return null; }
        return new Turn(role, content);
    }

    private static Role? DetectedRole(string name, out bool isSystem)
    {
        isSystem = name == "system";
        return name switch
        {
            "human" or "user" or "system" => Role.User,
            "gpt" or "assistant" => Role.Assistant,
            "function_call" => Role.FunctionCall,
            "observation" or "tool" => Role.Observation,
            _ => null,
        };
    }

    private static Role? TaggedRole(DatasetColumns c, string name, out bool isSystem)
    {
        isSystem = name == c.SystemTag;
        return isSystem || name == c.UserTag ? Role.User
            : name == c.AssistantTag ? Role.Assistant
            : name == c.FunctionTag ? Role.FunctionCall
            : name == c.ObservationTag ? Role.Observation
            : null;
    }

    private static bool TryParse(string s, out JsonNode? node)
    {
        try { node = JsonNode.Parse(s); return true; }
        catch (JsonException) { node = null; return false; }
    }

    /// <summary>A string column; <paramref name="column"/> null means the entry maps <paramref name="role"/> to nothing (empty).
    /// A missing required column is explained by the format's needs (detected file) or by the mapping (dataset_info.json).</summary>
    private static bool TryColumn(JsonElement e, DatasetColumns c, string role, string? column, bool required, string needs, out string value, out string? error)
    {
        value = "";
        error = null;
        if (column is null) return true;
        var name = column;
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            if (required) error = c.IsDetected ? $"has no '{name}' {needs}".TrimEnd() : $"has no '{name}'{c.Origin(role, name)}";
            return !required;
        }
        if (v.ValueKind != JsonValueKind.String) { error = $"has '{name}' that is {Kind(v)}, not a string"; return false; }
        value = v.GetString()!;
        return true;
    }

    /// <summary>'tools' is a JSON string (as in LLaMA-Factory's files) or an inline list; kept as JSON text.</summary>
    private static bool TryTools(JsonElement e, string? column, out string tools, out string? error)
    {
        tools = "";
        error = null;
        if (column is null || !e.TryGetProperty(column, out var t) || t.ValueKind == JsonValueKind.Null) return true;
        var text = t.ValueKind == JsonValueKind.String ? t.GetString()! : t.GetRawText();
        if (text.Length == 0) return true;
        if (!TryParse(text, out var node) || node is not (JsonArray or JsonObject))
        { error = $"has '{column}' that is not a JSON list of tool definitions"; return false; }
        tools = text;
        return true;
    }

    private static string Kind(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Number => "a number",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => v.ValueKind.ToString().ToLowerInvariant(),
    };

    internal static string RoleName(Role r) => r switch
    {
        Role.User => "user",
        Role.Assistant => "assistant",
        Role.FunctionCall => "function_call",
        _ => "observation",
    };
}
