using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>
/// Every dataset format × every template, against layouts written out by hand from LLaMA-Factory's
/// template definitions. Each expected piece is tokenized on its own (as LLaMA-Factory encodes each
/// template element separately) and marked learned or not; the encoder must give exactly those ids and
/// exactly those labels.
/// </summary>
public class TemplateLayoutTests
{
    private static TextTokenizer Tok => TestTokenizer.Builtin;

    // ---- the examples, one per format ----

    private const string Alpaca = """[{"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5."}]""";
    private const string AlpacaHistory = """
        [{"instruction": "And times?", "input": "", "output": "6.", "system": "Be brief.", "history": [["2 plus 3?", "5."]]}]
        """;
    private const string Conversations = """
        [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
          {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye!"}]}]
        """;
    private const string Messages = """[{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]""";
    private const string Preference = """
        [{"conversations": [{"from": "human", "value": "Pick a color."}], "chosen": {"from": "gpt", "value": "Blue."}, "rejected": {"from": "gpt", "value": "No."}}]
        """;
    // Compact JSON on purpose: the templates must re-serialise it the way Python's json.dumps does.
    private const string ToolCall = """
        [{"conversations": [{"from": "human", "value": "What is 2+3?"}, {"from": "function_call", "value": "{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3}}"},
          {"from": "observation", "value": "{\"result\": 5}"}, {"from": "gpt", "value": "It is 5."}],
          "tools": "[{\"name\":\"add\",\"description\":\"Add two numbers\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"description\":\"first\"},\"b\":{\"type\":\"number\",\"description\":\"second\"}},\"required\":[\"a\",\"b\"]}}]"}]
        """;

    // ---- tool prompts, written out from LLaMA-Factory's tool_utils.py ----

    private const string DefaultToolText =
        "You have access to the following tools:\n" +
        "> Tool Name: add\nTool Description: Add two numbers\nTool Args:\n" +
        "  - a (number, required): first\n  - b (number, required): second\n\n" +
        "Use the following format if using a tool:\n```\nAction: tool name (one of [add])\n" +
        "Action Input: the input to the tool, in a JSON format representing the kwargs (e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n```\n";

    internal const string AddToolJson =
        "{\"type\": \"function\", \"function\": {\"name\": \"add\", \"description\": \"Add two numbers\", \"parameters\": {\"type\": \"object\", " +
        "\"properties\": {\"a\": {\"type\": \"number\", \"description\": \"first\"}, \"b\": {\"type\": \"number\", \"description\": \"second\"}}, \"required\": [\"a\", \"b\"]}}}";

    internal const string QwenToolText =
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" + AddToolJson + "\n</tools>\n\n" +
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
        "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

    private const string Llama3ToolText =
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
        "You have access to the following functions. To call a function, please respond with JSON for a function call. " +
        "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}. Do not use variables.\n\n" +
        "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"add\",\n        \"description\": \"Add two numbers\",\n" +
        "        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n" +
        "                \"a\": {\n                    \"type\": \"number\",\n                    \"description\": \"first\"\n                },\n" +
        "                \"b\": {\n                    \"type\": \"number\",\n                    \"description\": \"second\"\n                }\n" +
        "            },\n            \"required\": [\n                \"a\",\n                \"b\"\n            ]\n        }\n    }\n}\n\n";

    private const string Qwen = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    private const string E = "<|endoftext|>"; // the built-in tokenizer's EOS, which the default template uses

    // (text, learned) pieces; P = prompt (masked), A = answer (learned)
    private static (string, bool) P(string s) => (s, false);
    private static (string, bool) A(string s) => (s, true);

    public static TheoryData<string, string, (string, bool)[]> Supervised => new()
    {
        // ---- default ----
        { "default", Alpaca, [P($"Human: Add the numbers.\n2 and 3{E}\nAssistant:"), A($"The sum is 5.{E}\n")] },
        { "default", AlpacaHistory, [P($"System: Be brief.{E}\n"), P($"Human: 2 plus 3?{E}\nAssistant:"), A($"5.{E}\n"),
                                     P($"Human: And times?{E}\nAssistant:"), A($"6.{E}\n")] },
        { "default", Conversations, [P($"System: Be brief.{E}\n"), P($"Human: Hi{E}\nAssistant:"), A($"Hello!{E}\n"),
                                     P($"Human: Bye{E}\nAssistant:"), A($"Goodbye!{E}\n")] },
        { "default", Messages, [P($"Human: Hi{E}\nAssistant:"), A($"Hello!{E}\n")] },
        { "default", ToolCall, [P($"System: {DefaultToolText}{E}\n"), P($"Human: What is 2+3?{E}\nAssistant:"),
                                A($"Action: add\nAction Input: {{\"a\": 2, \"b\": 3}}{E}\n"),
                                P($"Human: {{\"result\": 5}}{E}\nAssistant:"), A($"It is 5.{E}\n")] },
        // ---- chatml ----
        { "chatml", Alpaca, [P("<|im_start|>user\nAdd the numbers.\n2 and 3<|im_end|>\n<|im_start|>assistant\n"), A("The sum is 5.<|im_end|>\n")] },
        { "chatml", AlpacaHistory, [P("<|im_start|>system\nBe brief.<|im_end|>\n"), P("<|im_start|>user\n2 plus 3?<|im_end|>\n<|im_start|>assistant\n"),
                                    A("5.<|im_end|>\n"), P("<|im_start|>user\nAnd times?<|im_end|>\n<|im_start|>assistant\n"), A("6.<|im_end|>\n")] },
        { "chatml", Conversations, [P("<|im_start|>system\nBe brief.<|im_end|>\n"), P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
                                    A("Hello!<|im_end|>\n"), P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"), A("Goodbye!<|im_end|>\n")] },
        { "chatml", Messages, [P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), A("Hello!<|im_end|>\n")] },
        { "chatml", ToolCall, [P($"<|im_start|>system\n{DefaultToolText}<|im_end|>\n"), P("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"),
                               A("Action: add\nAction Input: {\"a\": 2, \"b\": 3}<|im_end|>\n"),
                               P("<|im_start|>tool\n{\"result\": 5}<|im_end|>\n<|im_start|>assistant\n"), A("It is 5.<|im_end|>\n")] },
        // ---- qwen: its default system prompt whenever the example has none ----
        { "qwen", Alpaca, [P($"<|im_start|>system\n{Qwen}<|im_end|>\n"), P("<|im_start|>user\nAdd the numbers.\n2 and 3<|im_end|>\n<|im_start|>assistant\n"),
                           A("The sum is 5.<|im_end|>\n")] },
        { "qwen", AlpacaHistory, [P("<|im_start|>system\nBe brief.<|im_end|>\n"), P("<|im_start|>user\n2 plus 3?<|im_end|>\n<|im_start|>assistant\n"),
                                  A("5.<|im_end|>\n"), P("<|im_start|>user\nAnd times?<|im_end|>\n<|im_start|>assistant\n"), A("6.<|im_end|>\n")] },
        { "qwen", Conversations, [P("<|im_start|>system\nBe brief.<|im_end|>\n"), P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
                                  A("Hello!<|im_end|>\n"), P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"), A("Goodbye!<|im_end|>\n")] },
        { "qwen", Messages, [P($"<|im_start|>system\n{Qwen}<|im_end|>\n"), P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), A("Hello!<|im_end|>\n")] },
        { "qwen", ToolCall, [P($"<|im_start|>system\n{Qwen}{QwenToolText}<|im_end|>\n"), P("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"),
                             A("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call><|im_end|>\n"),
                             P("<|im_start|>user\n<tool_response>\n{\"result\": 5}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"),
                             A("It is 5.<|im_end|>\n")] },
        // ---- llama3: BOS first (the built-in tokenizer has one) ----
        { "llama3", Alpaca, [P("<|begin_of_text|>"), P("<|start_header_id|>user<|end_header_id|>\n\nAdd the numbers.\n2 and 3<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
                             A("The sum is 5.<|eot_id|>")] },
        { "llama3", AlpacaHistory, [P("<|begin_of_text|>"), P("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"),
                                    P("<|start_header_id|>user<|end_header_id|>\n\n2 plus 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), A("5.<|eot_id|>"),
                                    P("<|start_header_id|>user<|end_header_id|>\n\nAnd times?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), A("6.<|eot_id|>")] },
        { "llama3", Conversations, [P("<|begin_of_text|>"), P("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"),
                                    P("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), A("Hello!<|eot_id|>"),
                                    P("<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), A("Goodbye!<|eot_id|>")] },
        { "llama3", Messages, [P("<|begin_of_text|>"), P("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
                               A("Hello!<|eot_id|>")] },
        { "llama3", ToolCall, [P("<|begin_of_text|>"), P($"<|start_header_id|>system<|end_header_id|>\n\n{Llama3ToolText}<|eot_id|>"),
                               P("<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
                               A("{\"name\": \"add\", \"parameters\": {\"a\": 2, \"b\": 3}}<|eot_id|>"),
                               P("<|start_header_id|>ipython<|end_header_id|>\n\n{\"result\": 5}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
                               A("It is 5.<|eot_id|>")] },
    };

    [Theory]
    [MemberData(nameof(Supervised))]
    public void EncodeSupervised_FormatAndTemplate_MatchesHandWrittenLayout(string template, string json, (string, bool)[] pieces)
    {
        var example = LoadSingle(json);
        var encoder = new Encoder(Tok, ChatTemplate.Get(template), cutoffLen: 4096);

        var seq = encoder.EncodeSupervised(example)!;

        var (ids, labels) = Expected(pieces);
        Assert.Equal(ids, seq.InputIds);
        Assert.Equal(labels, seq.Labels);
        Assert.Equal(string.Concat(pieces.Select(p => p.Item1)), Tok.Decode(seq.InputIds));
    }

    public static TheoryData<string, (string, bool)[], string, string> Pairwise => new()
    {
        { "default", [P($"Human: Pick a color.{E}\nAssistant:")], $"Blue.{E}\n", $"No.{E}\n" },
        { "chatml", [P("<|im_start|>user\nPick a color.<|im_end|>\n<|im_start|>assistant\n")], "Blue.<|im_end|>\n", "No.<|im_end|>\n" },
        { "qwen", [P($"<|im_start|>system\n{Qwen}<|im_end|>\n"), P("<|im_start|>user\nPick a color.<|im_end|>\n<|im_start|>assistant\n")],
          "Blue.<|im_end|>\n", "No.<|im_end|>\n" },
        { "llama3", [P("<|begin_of_text|>"), P("<|start_header_id|>user<|end_header_id|>\n\nPick a color.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")],
          "Blue.<|eot_id|>", "No.<|eot_id|>" },
    };

    [Theory]
    [MemberData(nameof(Pairwise))]
    public void EncodePairwise_PreferenceAndTemplate_SharedPromptLearnedAnswers(string template, (string, bool)[] prompt, string chosen, string rejected)
    {
        var example = LoadSingle(Preference);
        var encoder = new Encoder(Tok, ChatTemplate.Get(template), cutoffLen: 4096);

        var pair = encoder.EncodePairwise(example)!;

        var (cIds, cLabels) = Expected([.. prompt, A(chosen)]);
        var (rIds, rLabels) = Expected([.. prompt, A(rejected)]);
        Assert.Equal(cIds, pair.Chosen.InputIds);
        Assert.Equal(cLabels, pair.Chosen.Labels);
        Assert.Equal(rIds, pair.Rejected.InputIds);
        Assert.Equal(rLabels, pair.Rejected.Labels);
        Assert.Equal(Expected(prompt).Ids.Length, pair.PromptLength);
    }

    [Fact]
    public void EncodePairwise_AlpacaPreference_SameAsSharegptPreference()
    {
        var alpaca = LoadSingle("""[{"instruction": "Pick a color.", "chosen": "Blue.", "rejected": "No."}]""");
        var sharegpt = LoadSingle(Preference);
        var encoder = new Encoder(Tok, ChatTemplate.Get("qwen"), cutoffLen: 4096);

        Assert.Equal(encoder.EncodePairwise(sharegpt), encoder.EncodePairwise(alpaca), PairComparer.Instance);
    }

    private sealed class PairComparer : IEqualityComparer<EncodedPair?>
    {
        public static readonly PairComparer Instance = new();
        public bool Equals(EncodedPair? x, EncodedPair? y) =>
            x!.Chosen.InputIds.SequenceEqual(y!.Chosen.InputIds) && x.Chosen.Labels.SequenceEqual(y.Chosen.Labels)
            && x.Rejected.InputIds.SequenceEqual(y.Rejected.InputIds) && x.Rejected.Labels.SequenceEqual(y.Rejected.Labels);
        public int GetHashCode(EncodedPair? obj) => 0;
    }

    internal static (int[] Ids, int[] Labels) Expected(IEnumerable<(string Text, bool Learned)> pieces, TextTokenizer? tokenizer = null)
    {
        var ids = new List<int>();
        var labels = new List<int>();
        foreach (var (text, learned) in pieces)
        {
            var p = (tokenizer ?? Tok).Encode(text);
            ids.AddRange(p);
            labels.AddRange(learned ? p : Enumerable.Repeat(-100, p.Length));
        }
        return ([.. ids], [.. labels]);
    }

    internal static Example LoadSingle(string json)
    {
        using var t = new TempFiles();
        return DatasetLoader.Load(t.Write("one.json", json), null).Examples.Single();
    }
}
