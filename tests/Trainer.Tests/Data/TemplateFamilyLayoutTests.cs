using System.Text.Json.Nodes;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>
/// The Qwen3, Mistral and Llama 2 templates against token layouts written by hand from LLaMA-Factory's
/// <c>template.py</c>: Qwen3's think block (an answer without a thought gets <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c>,
/// learned with enable_thinking, masked in the prompt without it; qwen3_nothink adds nothing), the system
/// prompt fused into the first user message for Mistral and Llama 2. The tokenizer is the built-in one
/// with <c>&lt;think&gt;</c> and <c>&lt;/think&gt;</c> added as single tokens, as Qwen3's tokenizer has them.
/// </summary>
public class TemplateFamilyLayoutTests
{
    private static readonly Lazy<TextTokenizer> ThinkTokenizer = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "lss-think-tokenizer-" + Guid.NewGuid().ToString("N"));
        BuiltinTokenizer.WriteTo(dir);
        var path = Path.Combine(dir, "tokenizer.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        var added = json["added_tokens"]!.AsArray();
        int next = BuiltinTokenizer.VocabSize;
        foreach (var t in new[] { "<think>", "</think>" })
            added.Add(new JsonObject { ["id"] = next++, ["content"] = t, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = false });
        File.WriteAllText(path, json.ToJsonString());
        var tokenizer = TextTokenizer.Load(dir);
        Directory.Delete(dir, recursive: true);
        return tokenizer;
    });

    private static TextTokenizer Tok => ThinkTokenizer.Value;

    private const string Conversations = """
        [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
          {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye!"}]}]
        """;
    // The first answer carries a thought, the second does not.
    private const string Thought = """
        [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nThey greet.\n</think>\n\nHello!"},
          {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye!"}]}]
        """;
    private const string Alpaca = """[{"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5.", "system": "Be brief."}]""";
    private const string ToolCall = """
        [{"conversations": [{"from": "human", "value": "What is 2+3?"}, {"from": "function_call", "value": "{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3}}"},
          {"from": "observation", "value": "{\"result\": 5}"}, {"from": "gpt", "value": "It is 5."}],
          "tools": "[{\"name\":\"add\",\"description\":\"Add two numbers\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"description\":\"first\"},\"b\":{\"type\":\"number\",\"description\":\"second\"}},\"required\":[\"a\",\"b\"]}}]"}]
        """;
    private const string AddToolJson = TemplateLayoutTests.AddToolJson;

    private const string Think = "<think>\n\n</think>\n\n";   // LLaMA-Factory's empty thought
    private const string E = "<|endoftext|>";                // the built-in tokenizer's EOS
    private const string B = "<|begin_of_text|>";            // and BOS

    private static (string, bool) P(string s) => (s, false);
    private static (string, bool) A(string s) => (s, true);

    public static TheoryData<string, bool?, string, (string, bool)[]> Supervised => new()
    {
        // ---- qwen3, enable_thinking true (LLaMA-Factory's default): no default system; the empty thought is learned ----
        { "qwen3", true, Conversations, [P("<|im_start|>system\nBe brief.<|im_end|>\n"), P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
                                          A(Think), A("Hello!<|im_end|>\n"), P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"),
                                          A(Think), A("Goodbye!<|im_end|>\n")] },
        { "qwen3", true, Thought, [P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), A("<think>\nThey greet.\n</think>\n\nHello!<|im_end|>\n"),
                                    P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"), A(Think), A("Goodbye!<|im_end|>\n")] },
        // ---- qwen3, enable_thinking false: thoughts removed, the empty thought closes the (masked) prompt ----
        { "qwen3", false, Thought, [P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), P(Think), A("Hello!<|im_end|>\n"),
                                     P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"), P(Think), A("Goodbye!<|im_end|>\n")] },
        // ---- qwen3 with a tool call: the function turn is an answer without a thought too ----
        { "qwen3", true, ToolCall, [P($"<|im_start|>system\n{TemplateLayoutTests.QwenToolText}<|im_end|>\n"), P("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"),
                                     A(Think), A("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call><|im_end|>\n"),
                                     P("<|im_start|>user\n<tool_response>\n{\"result\": 5}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"),
                                     A(Think), A("It is 5.<|im_end|>\n")] },
        // ---- qwen3_nothink: answers as written, nothing added ----
        { "qwen3_nothink", true, Thought, [P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), A("<think>\nThey greet.\n</think>\n\nHello!<|im_end|>\n"),
                                            P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"), A("Goodbye!<|im_end|>\n")] },
        { "qwen3_nothink", true, Conversations, [P("<|im_start|>system\nBe brief.<|im_end|>\n"), P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
                                                  A("Hello!<|im_end|>\n"), P("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"), A("Goodbye!<|im_end|>\n")] },
        // ---- mistral: BOS, the system prompt + "\n\n" inside the first [INST], " answer" + EOS ----
        { "mistral", true, Conversations, [P(B), P("[INST] Be brief.\n\nHi[/INST]"), A($" Hello!{E}"), P("[INST] Bye[/INST]"), A($" Goodbye!{E}")] },
        { "mistral", true, Alpaca, [P(B), P("[INST] Be brief.\n\nAdd the numbers.\n2 and 3[/INST]"), A($" The sum is 5.{E}")] },
        { "mistral", true, ToolCall, [P(B), P($"[INST] [AVAILABLE_TOOLS] [{AddToolJson}][/AVAILABLE_TOOLS]\n\nWhat is 2+3?[/INST]"),
                                       A($"[TOOL_CALLS] [{{\"name\": \"add\", \"arguments\": {{\"a\": 2, \"b\": 3}}}}]{E}"),
                                       P("[TOOL_RESULTS] {\"content\": {\"result\": 5}}[/TOOL_RESULTS]"), A($" It is 5.{E}")] },
        // ---- llama2: BOS in every user turn, <<SYS>> block inside the first ----
        { "llama2", true, Conversations, [P($"{B}[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"), A($"Hello!{E}"),
                                           P($"{B}[INST] Bye [/INST]"), A($"Goodbye!{E}")] },
    };

    [Theory]
    [MemberData(nameof(Supervised))]
    public void EncodeSupervised_FamilyTemplate_MatchesHandWrittenLayout(string template, bool? thinking, string json, (string, bool)[] pieces)
    {
        var example = TemplateLayoutTests.LoadSingle(json);
        var encoder = new Encoder(Tok, ChatTemplate.Get(template).WithThinking(thinking), cutoffLen: 4096);

        var seq = encoder.EncodeSupervised(example)!;

        var (ids, labels) = Expected(pieces);
        Assert.Equal(ids, seq.InputIds);
        Assert.Equal(labels, seq.Labels);
        Assert.Equal(string.Concat(pieces.Select(p => p.Item1)), Tok.Decode(seq.InputIds));
    }

    // A two-turn preference example whose earlier answer carries a thought.
    private const string Preference = """
        [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "<think>\nThey greet.\n</think>\n\nHello!"},
          {"from": "human", "value": "Pick a color."}], "chosen": {"from": "gpt", "value": "Blue."}, "rejected": {"from": "gpt", "value": "No."}}]
        """;

    public static TheoryData<bool?, (string, bool)[], string[], string[]> Pairwise => new()
    {
        // Earlier thoughts dropped (preserve_thinking false); the empty thought starts both learned answers.
        { true, [P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), P("Hello!<|im_end|>\n"), P("<|im_start|>user\nPick a color.<|im_end|>\n<|im_start|>assistant\n")],
          [Think, "Blue.<|im_end|>\n"], [Think, "No.<|im_end|>\n"] },
        // Thinking off: the empty thought ends the shared prompt.
        { false, [P("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), P("Hello!<|im_end|>\n"), P("<|im_start|>user\nPick a color.<|im_end|>\n<|im_start|>assistant\n"), P(Think)],
          ["Blue.<|im_end|>\n"], ["No.<|im_end|>\n"] },
    };

    [Theory]
    [MemberData(nameof(Pairwise))]
    public void EncodePairwise_Qwen3_HistoryThoughtsDroppedEmptyThoughtPlaced(bool? thinking, (string, bool)[] prompt, string[] chosen, string[] rejected)
    {
        var example = TemplateLayoutTests.LoadSingle(Preference);
        var encoder = new Encoder(Tok, ChatTemplate.Get("qwen3").WithThinking(thinking), cutoffLen: 4096);

        var pair = encoder.EncodePairwise(example)!;

        var (cIds, cLabels) = Expected([.. prompt, .. chosen.Select(A)]);
        var (rIds, rLabels) = Expected([.. prompt, .. rejected.Select(A)]);
        Assert.Equal(cIds, pair.Chosen.InputIds);
        Assert.Equal(cLabels, pair.Chosen.Labels);
        Assert.Equal(rIds, pair.Rejected.InputIds);
        Assert.Equal(rLabels, pair.Rejected.Labels);
    }

    [Fact]
    public void EmptyThought_ThinkTokenizer_TagsAreSingleTokens()
    {
        var ids = Tok.Encode(Think);

        Assert.Equal(Tok.TokenId("<think>"), ids[0]);
        Assert.Single(ids, id => id == Tok.TokenId("</think>"));
        Assert.Equal(Think, Tok.Decode(ids));
    }

    private static (int[] Ids, int[] Labels) Expected(IEnumerable<(string Text, bool Learned)> pieces) => TemplateLayoutTests.Expected(pieces, Tok);
}
