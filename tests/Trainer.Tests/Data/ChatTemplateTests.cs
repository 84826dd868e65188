using System.Text.Json.Nodes;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class ChatTemplateTests
{
    [Fact]
    public void Validate_BuiltinTokenizer_AllTemplatesPass()
    {
        foreach (var name in ChatTemplate.Names)
            ChatTemplate.Get(name).Validate(TestTokenizer.Builtin);
    }

    [Fact]
    public void Validate_TokenizerWithoutLlama3Tokens_OneLineErrorSuggestsOthers()
    {
        using var t = new TempFiles();
        using var tok = TokenizerWithout(t.Dir, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>");

        var ex = Assert.Throws<InvalidOperationException>(() => ChatTemplate.Get("llama3").Validate(tok));

        Assert.Equal("template 'llama3' needs special token <|start_header_id|>, which the tokenizer does not have; " +
                     "use template 'default' or 'chatml' or 'qwen' or 'qwen3' or 'qwen3_nothink' or 'mistral' or 'llama2' instead", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Validate_TokenizerWithoutChatmlTokens_QwenRejected()
    {
        using var t = new TempFiles();
        using var tok = TokenizerWithout(t.Dir, "<|im_end|>");

        var ex = Assert.Throws<InvalidOperationException>(() => new Encoder(tok, ChatTemplate.Get("qwen"), 128));

        Assert.StartsWith("template 'qwen' needs special token <|im_end|>", ex.Message);
    }

    [Fact]
    public void Get_UnknownName_ListsSupported()
    {
        var ex = Assert.Throws<ArgumentException>(() => ChatTemplate.Get("vicuna"));
        Assert.Contains("default, chatml, qwen, llama3", ex.Message);
    }

    [Fact]
    public void RenderMessages_Qwen_WritesSystemAndTurns()
    {
        var turns = new[] { new Turn(Role.User, "Hi"), new Turn(Role.Assistant, "Hello!") };

        var text = ChatTemplate.Get("qwen").RenderMessages(TestTokenizer.Builtin, turns, "", "");

        Assert.Equal([
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            "Hello!<|im_end|>\n"], text);
    }

    [Fact]
    public void FunctionCall_ParallelCalls_RenderedPerFormat()
    {
        var turns = new[] { new Turn(Role.User, "q"), new Turn(Role.FunctionCall, """[{"name": "f", "arguments": {"x": "é\n"}}, {"name": "g", "arguments": {}}]""") };
        var tok = TestTokenizer.Builtin;

        Assert.Equal("Action: f\nAction Input: {\"x\": \"é\\n\"}\nAction: g\nAction Input: {}<|endoftext|>\n",
            ChatTemplate.Get("default").RenderMessages(tok, turns, "", "")[1]);
        Assert.Equal("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": \"é\\n\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call><|im_end|>\n",
            ChatTemplate.Get("qwen").RenderMessages(tok, turns, "", "")[1]);
        Assert.Equal("[{\"name\": \"f\", \"parameters\": {\"x\": \"é\\n\"}}, {\"name\": \"g\", \"parameters\": {}}]<|eot_id|>",
            ChatTemplate.Get("llama3").RenderMessages(tok, turns, "", "")[1]);
    }

    [Fact]
    public void StopTokenIds_Llama3_EotAndEos()
    {
        var tok = TestTokenizer.Builtin;
        var ids = ChatTemplate.Get("llama3").StopTokenIds(tok);
        Assert.Equal([tok.TokenId("<|eot_id|>")!.Value, tok.EosId!.Value], ids);
    }

    /// <summary>The built-in tokenizer with some special tokens removed from its added tokens.</summary>
    private static TextTokenizer TokenizerWithout(string dir, params string[] drop)
    {
        BuiltinTokenizer.WriteTo(dir);
        var path = Path.Combine(dir, "tokenizer.json");
        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var added = root["added_tokens"]!.AsArray();
        foreach (var node in added.Where(n => drop.Contains((string)n!["content"]!)).ToList()) added.Remove(node);
        File.WriteAllText(path, root.ToJsonString());
        return TextTokenizer.Load(dir);
    }
}
