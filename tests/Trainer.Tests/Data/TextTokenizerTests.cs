using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class TextTokenizerTests
{
    private static TextTokenizer Tok => TestTokenizer.Builtin;

    [Theory]
    [InlineData("Hello, world! How are you today?")]
    [InlineData("Ünïcödé: 日本語のテキスト, emoji 🦙🚀, Ελληνικά, русский, עברית")]
    [InlineData("  leading and trailing spaces \n\ttabs\r\n and newlines\n\n")]
    [InlineData("{\"name\": \"get_weather\", \"arguments\": {\"x\": 1}}")]
    public void EncodeDecode_UnicodeText_RoundTrips(string text)
    {
        var ids = Tok.Encode(text);

        Assert.Equal(text, Tok.Decode(ids));
        Assert.All(ids, id => Assert.InRange(id, 0, 1023));
    }

    [Fact]
    public void Encode_SpecialTokenInText_IsOneIdAndDecodesBack()
    {
        var imStart = Tok.TokenId("<|im_start|>")!.Value;
        var imEnd = Tok.TokenId("<|im_end|>")!.Value;

        var ids = Tok.Encode("<|im_start|>user\nhi<|im_end|>");

        Assert.Equal(imStart, ids[0]);
        Assert.Equal(imEnd, ids[^1]);
        Assert.Equal([imStart, .. Tok.Encode("user\nhi"), imEnd], ids);
        Assert.Equal("<|im_start|>user\nhi<|im_end|>", Tok.Decode(ids));
    }

    [Fact]
    public void Encode_PlainText_AddsNoSpecialTokens()
    {
        var ids = Tok.Encode("hi");

        Assert.DoesNotContain(Tok.BosId!.Value, ids);
        Assert.DoesNotContain(Tok.EosId!.Value, ids);
        Assert.Equal("hi", Tok.Decode(ids));
    }

    [Fact]
    public void Encode_CommonWords_AreMergedNotBytes()
    {
        // The learned merges must actually be used by the library: a frequent corpus word is one token.
        Assert.Single(Tok.Encode(" the"));
        Assert.True(Tok.Encode("The assistant answered the question.").Length < "The assistant answered the question.".Length / 2);
    }

    [Fact]
    public void Load_TokenizerWithTemplatePostProcessor_DoesNotAddBos()
    {
        // A copy of the built-in tokenizer with Llama-3's post-processor, which adds <|begin_of_text|>.
        var dir = Path.Combine(Path.GetTempPath(), "longseq-test-postproc-" + Guid.NewGuid().ToString("N"));
        BuiltinTokenizer.WriteTo(dir);
        try
        {
            var path = Path.Combine(dir, "tokenizer.json");
            var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            root["post_processor"] = System.Text.Json.Nodes.JsonNode.Parse("""
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [1019], "tokens": ["<|begin_of_text|>"]}}}
                """);
            File.WriteAllText(path, root.ToJsonString());
            using var tok = TextTokenizer.Load(dir);

            Assert.Equal(Tok.Encode("hello there"), tok.Encode("hello there"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Properties_BuiltinTokenizer_MatchConfig()
    {
        Assert.Equal(1024, Tok.VocabSize);
        Assert.Equal(Tok.TokenId("<|endoftext|>"), Tok.EosId);
        Assert.Equal(Tok.TokenId("<|endoftext|>"), Tok.PadId);
        Assert.Equal(Tok.TokenId("<|begin_of_text|>"), Tok.BosId);
        Assert.Null(Tok.TokenId("<|not_a_token|>"));
    }

    [Fact]
    public void Decode_IdOutsideVocabulary_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode([5000]));
    }
}
