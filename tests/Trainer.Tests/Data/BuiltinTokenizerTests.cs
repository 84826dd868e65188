using System.Text.Json.Nodes;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class BuiltinTokenizerTests
{
    [Fact]
    public void WriteTo_TwoDirectories_ByteIdenticalFiles()
    {
        var a = Path.Combine(Path.GetTempPath(), "longseq-test-tok-" + Guid.NewGuid().ToString("N"));
        var b = Path.Combine(Path.GetTempPath(), "longseq-test-tok-" + Guid.NewGuid().ToString("N"));
        try
        {
            BuiltinTokenizer.WriteTo(a);
            BuiltinTokenizer.WriteTo(b);
            foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
                Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        }
        finally
        {
            Directory.Delete(a, true);
            Directory.Delete(b, true);
        }
    }

    [Fact]
    public void TokenizerJson_Generated_IsByteLevelBpeWithAllSpecials()
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(BuiltinTokenizer.EnsureCached(), "tokenizer.json")))!;

        Assert.Equal("BPE", (string)root["model"]!["type"]!);
        Assert.Equal("ByteLevel", (string)root["pre_tokenizer"]!["type"]!);
        Assert.Equal("ByteLevel", (string)root["decoder"]!["type"]!);
        var vocab = root["model"]!["vocab"]!.AsObject();
        var merges = root["model"]!["merges"]!.AsArray();
        var added = root["added_tokens"]!.AsArray().Select(t => ((string)t!["content"]!, (int)t["id"]!)).ToList();
        Assert.InRange(merges.Count, 300, 1024);
        Assert.Equal(1024, vocab.Count + added.Count);
        Assert.Equal(BuiltinTokenizer.SpecialTokens, added.Select(t => t.Item1));
        // ids are exactly 0..1023, no gaps, no duplicates
        var ids = vocab.Select(kv => (int)kv.Value!).Concat(added.Select(t => t.Item2)).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 1024), ids);
        Assert.True(vocab.ContainsKey("Ġ")); // the space byte in GPT-2's alphabet
    }

    [Fact]
    public void EnsureCached_ConcurrentCallersOnEmptyRoot_OneCompleteDirectoryNoLeftovers()
    {
        using var t = new TempFiles();
        var dirs = new string[6];
        using var start = new Barrier(dirs.Length);
        var threads = Enumerable.Range(0, dirs.Length).Select(i => new Thread(() =>
        {
            start.SignalAndWait(); // all race to create the same cache entry
            dirs[i] = BuiltinTokenizer.EnsureCached(t.Dir);
        })).ToList();
        threads.ForEach(th => th.Start());
        threads.ForEach(th => th.Join());

        Assert.Single(dirs.Distinct());
        Assert.Equal([dirs[0]], Directory.GetDirectories(t.Dir)); // staging folders cleaned up
        using var tok = TextTokenizer.Load(dirs[0]);
        Assert.Equal(TestTokenizer.Builtin.Encode("hello world"), tok.Encode("hello world"));
    }

    [Fact]
    public void ByteLevelAlphabet_AllBytes_DistinctPrintableChars()
    {
        var chars = ByteLevelAlphabet.ByteToChar;
        Assert.Equal(256, chars.Distinct().Count());
        Assert.Equal('Ġ', chars[' ']);
        Assert.Equal('Ċ', chars['\n']);
        Assert.Equal('a', chars['a']);
    }
}
