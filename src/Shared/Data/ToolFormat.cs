using System.Text;
using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Data;

/// <summary>How a template writes tool definitions into the system prompt and renders function calls
/// (LLaMA-Factory's <c>tool_utils.py</c>: DefaultToolUtils, QwenToolUtils, Llama3ToolUtils, MistralToolUtils).</summary>
public enum ToolFormat { Default, Qwen, Llama3, Mistral }

public static class ToolText
{
    /// <summary>
    /// The date Llama 3's tool prompt states. LLaMA-Factory uses today's date, which would make the token
    /// ids of a dataset change from day to day (and break exact resume); we use the default of Meta's
    /// Llama 3.1 chat template instead.
    /// </summary>
    public const string Llama3Date = "26 Jul 2024";

    private const string DefaultToolPrompt =
        "You have access to the following tools:\n{tool_text}" +
        "Use the following format if using a tool:\n" +
        "```\n" +
        "Action: tool name (one of [{tool_names}])\n" +
        "Action Input: the input to the tool, in a JSON format representing the kwargs " +
        "(e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n" +
        "```\n";

    private const string QwenToolPrompt =
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tool_text}" +
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within " +
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, " +
        "\"arguments\": <args-json-object>}\n</tool_call>";

    private const string Llama3ToolPrompt =
        "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n" +
        "You have access to the following functions. To call a function, please respond with JSON for a function call. " +
        "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}. " +
        "Do not use variables.\n\n{tool_text}";

    /// <summary>Text appended to the system prompt for a tools JSON list ("" for an empty list).</summary>
    public static string FormatTools(ToolFormat format, string toolsJson)
    {
        var tools = JsonNode.Parse(toolsJson) switch
        {
            JsonArray a => a.ToList(),
            var single => [single],
        };
        if (tools.Count == 0) return "";
        return format switch
        {
            ToolFormat.Qwen => QwenToolPrompt.Replace("{tool_text}",
                string.Concat(tools.Select(t => "\n" + PythonJson.Dumps(WrapFunction(t))))),
            ToolFormat.Llama3 => Llama3ToolPrompt.Replace("{date}", Llama3Date).Replace("{tool_text}",
                string.Concat(tools.Select(t => PythonJson.Dumps(WrapFunction(t), indent: 4) + "\n\n"))),
            ToolFormat.Mistral => "[AVAILABLE_TOOLS] " + PythonJson.Dumps(new JsonArray(tools.Select(WrapFunction).ToArray())) + "[/AVAILABLE_TOOLS]",
            _ => DefaultTools(tools),
        };
    }

    /// <summary>The text of a function_call turn, before the template's end-of-turn slot.</summary>
    public static string FormatFunction(ToolFormat format, IReadOnlyList<FunctionCall> calls) => format switch
    {
        ToolFormat.Qwen => string.Join("\n", calls.Select(c =>
            "<tool_call>\n" + PythonJson.Dumps(new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments?.DeepClone() }) + "\n</tool_call>")),
        ToolFormat.Llama3 => calls.Count == 1
            ? PythonJson.Dumps(Llama3Call(calls[0]))
            : PythonJson.Dumps(new JsonArray(calls.Select(c => (JsonNode?)Llama3Call(c)).ToArray())),
        ToolFormat.Mistral => PythonJson.Dumps(new JsonArray(calls.Select(c => (JsonNode?)new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments?.DeepClone() }).ToArray())),
        _ => string.Join("\n", calls.Select(c => $"Action: {c.Name}\nAction Input: {PythonJson.Dumps(c.Arguments)}")),
    };

    private static JsonObject Llama3Call(FunctionCall c) => new() { ["name"] = c.Name, ["parameters"] = c.Arguments?.DeepClone() };

    private static JsonNode? WrapFunction(JsonNode? tool) =>
        tool is JsonObject o && (string?)(o["type"] as JsonValue) == "function"
            ? tool.DeepClone()
            : new JsonObject { ["type"] = "function", ["function"] = tool?.DeepClone() };

    private static string DefaultTools(List<JsonNode?> tools)
    {
        var toolText = new StringBuilder();
        var names = new List<string>();
        foreach (var raw in tools)
        {
            var tool = raw is JsonObject o && Str(o["type"]) == "function" ? o["function"] as JsonObject : raw as JsonObject;
            if (tool is null) continue;
            var parameters = tool["parameters"] as JsonObject;
            var required = (parameters?["required"] as JsonArray)?.Select(Str).ToHashSet() ?? [];
            var paramText = new StringBuilder();
            foreach (var (name, p) in parameters?["properties"] as JsonObject ?? [])
            {
                var param = p as JsonObject ?? [];
                var enumText = param["enum"] is JsonArray { Count: > 0 } en ? $", should be one of [{string.Join(", ", en.Select(Str))}]" : "";
                var itemsText = param["items"] is JsonObject { Count: > 0 } it ? $", where each item should be {Str(it["type"])}" : "";
                paramText.Append($"  - {name} ({Str(param["type"])}{(required.Contains(name) ? ", required" : "")}): " +
                                 $"{Str(param["description"])}{enumText}{itemsText}\n");
            }
            var toolName = Str(tool["name"]);
            toolText.Append($"> Tool Name: {toolName}\nTool Description: {Str(tool["description"])}\nTool Args:\n{paramText}\n");
            names.Add(toolName);
        }
        return DefaultToolPrompt.Replace("{tool_text}", toolText.ToString()).Replace("{tool_names}", string.Join(", ", names));
    }

    // Python's str() of a JSON value as LLaMA-Factory formats it: strings bare, other values as JSON.
    private static string Str(JsonNode? n) =>
        n is null ? "" : n is JsonValue v && v.TryGetValue<string>(out var s) ? s : PythonJson.Dumps(n);
}
