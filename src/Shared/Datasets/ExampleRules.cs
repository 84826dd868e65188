using System.Text.Json;

namespace LongSeqService.Shared.Datasets;

/// <summary>
/// LLaMA-Factory's rules for one example (its AlpacaDatasetConverter / SharegptDatasetConverter).
/// Alpaca: instruction, input, output, optional system and history ([prompt, answer] pairs); preference
/// examples have chosen and rejected instead of output. ShareGPT: a list of turns, an optional system
/// turn first, then user-side (human / observation) and assistant-side (gpt / function_call) turns
/// alternating; an even count ending with the assistant, or for preference data an odd count ending with
/// the user and chosen/rejected assistant turns beside it. "conversations" uses from/value and
/// human/gpt; "messages" uses role/content and user/assistant (OpenAI's layout).
/// </summary>
public static class ExampleRules
{
    public static string? CheckAlpaca(JsonElement e, bool preference)
    {
        if (!IsString(e, "instruction", required: true)) return Expect("instruction", e);
        foreach (var key in new[] { "input", "system" })
            if (!IsString(e, key, required: false)) return Expect(key, e);
        if (e.TryGetProperty("history", out var history) && history.ValueKind != JsonValueKind.Null)
        {
            if (history.ValueKind != JsonValueKind.Array) return $"\"history\" must be a list of [prompt, answer] pairs, got {DatasetInspector.Kind(history)}";
            int i = 0;
            foreach (var pair in history.EnumerateArray())
            {
                if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2 || pair.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                    return $"\"history\"[{i}] must be a [prompt, answer] pair of strings";
                i++;
            }
        }
        if (preference)
        {
            if (!IsString(e, "chosen", required: true)) return Expect("chosen", e);
            if (!IsString(e, "rejected", required: true)) return Expect("rejected", e);
            return null;
        }
        return IsString(e, "output", required: true) ? null : Expect("output", e);
    }

    public static string? CheckShareGpt(JsonElement e, bool preference)
    {
        var tags = e.TryGetProperty("conversations", out var turns) ? Tags.ShareGpt : Tags.OpenAi;
        if (tags == Tags.OpenAi) turns = e.GetProperty("messages");
        if (turns.ValueKind != JsonValueKind.Array) return $"\"{tags.Key}\" must be a list of turns, got {DatasetInspector.Kind(turns)}";
        var roles = new List<string>();
        int i = 0;
        foreach (var turn in turns.EnumerateArray())
        {
            var problem = CheckTurn(turn, tags, $"\"{tags.Key}\"[{i}]", out var role);
            if (problem != null) return problem;
            roles.Add(role!);
            i++;
        }
        if (!IsString(e, "system", required: false)) return Expect("system", e);
        int start = roles.Count > 0 && roles[0] == tags.System ? 1 : 0;
        for (int t = start; t < roles.Count; t++)
        {
            bool userSide = (t - start) % 2 == 0;
            var allowed = userSide ? tags.UserSide : tags.AssistantSide;
            if (!allowed.Contains(roles[t]))
                return $"\"{tags.Key}\"[{t}] has {tags.Role} '{roles[t]}' where {string.Join(" or ", allowed)} is expected (turns alternate {tags.UserSide[0]} / {tags.AssistantSide[0]}" +
                       (roles[t] == tags.System ? "; a system turn may only come first" : "") + ")";
        }
        int count = roles.Count - start;
        if (count == 0) return $"\"{tags.Key}\" has no turns";
        if (!preference && count % 2 != 0) return $"\"{tags.Key}\" must end with a {tags.AssistantSide[0]} turn (an even number of turns after any system turn), has {count}";
        if (preference)
        {
            if (count % 2 == 0) return $"preference data: \"{tags.Key}\" must end with a {tags.UserSide[0]} turn (the prompt), with the answers in chosen and rejected";
            foreach (var key in new[] { "chosen", "rejected" })
            {
                if (!e.TryGetProperty(key, out var answer)) return $"missing \"{key}\"";
                var problem = CheckTurn(answer, tags, $"\"{key}\"", out var role);
                if (problem != null) return problem;
                if (!tags.AssistantSide.Contains(role!)) return $"\"{key}\" must be a {tags.AssistantSide[0]} turn, has {tags.Role} '{role}'";
            }
        }
        return null;
    }

    /// <summary>Characters of text in an example: every string value, recursively.</summary>
    public static int TextLength(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!.Length,
        JsonValueKind.Array => e.EnumerateArray().Sum(TextLength),
        JsonValueKind.Object => e.EnumerateObject().Sum(p => TextLength(p.Value)),
        _ => 0,
    };

    private static string? CheckTurn(JsonElement turn, Tags tags, string where, out string? role)
    {
        role = null;
        if (turn.ValueKind != JsonValueKind.Object) return $"{where} must be an object with \"{tags.Role}\" and \"{tags.Content}\", got {DatasetInspector.Kind(turn)}";
        if (!turn.TryGetProperty(tags.Role, out var r) || r.ValueKind != JsonValueKind.String) return $"{where} needs a string \"{tags.Role}\"";
        if (!turn.TryGetProperty(tags.Content, out var c) || c.ValueKind != JsonValueKind.String) return $"{where} needs a string \"{tags.Content}\"";
        role = r.GetString()!;
        if (!tags.AllRoles.Contains(role)) return $"{where} has unknown {tags.Role} '{role}'; use {string.Join(", ", tags.AllRoles)}";
        return null;
    }

    private static bool IsString(JsonElement e, string key, bool required) =>
        e.TryGetProperty(key, out var v) ? v.ValueKind == JsonValueKind.String || (!required && v.ValueKind == JsonValueKind.Null) : !required;

    private static string Expect(string key, JsonElement e) =>
        e.TryGetProperty(key, out var v) ? $"\"{key}\" must be a string, got {DatasetInspector.Kind(v)}" : $"missing \"{key}\"";

    private sealed record Tags(string Key, string Role, string Content, string System, string[] UserSide, string[] AssistantSide)
    {
        public static readonly Tags ShareGpt = new("conversations", "from", "value", "system", ["human", "observation"], ["gpt", "function_call"]);
        public static readonly Tags OpenAi = new("messages", "role", "content", "system", ["user", "observation", "tool"], ["assistant", "function_call"]);
        public string[] AllRoles => [System, .. UserSide, .. AssistantSide];
    }
}
