using System.Diagnostics;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using Xunit.Abstractions;

namespace LongSeqService.Trainer.Tests.Data;

public class EncoderTests(ITestOutputHelper output)
{
    private static TextTokenizer Tok => TestTokenizer.Builtin;

    [Theory]
    // (source, target, cutoff) -> (source kept, target kept), worked out by hand from infer_seqlen
    [InlineData(100, 10, 50, 40, 10)]   // short target kept whole, source gets the rest
    [InlineData(10, 100, 50, 10, 40)]   // long target, short source kept whole
    [InlineData(100, 100, 50, 25, 25)]  // both long: split in proportion
    [InlineData(300, 100, 60, 45, 15)]  // int(60 * 100/400) = 15
    [InlineData(5, 5, 50, 5, 5)]        // fits
    [InlineData(1000, 1, 1, 1, 0)]      // int(1 * 1/1001) = 0: the answer would vanish
    public void InferSeqLen_HandComputedCases(int s, int t, int cutoff, int expS, int expT)
    {
        Assert.Equal((expS, expT), Encoder.InferSeqLen(s, t, cutoff));
    }

    [Fact]
    public void EncodeSupervised_LongPromptOverCutoff_KeepsWholeAnswerAndTruncatesPrompt()
    {
        var prompt = string.Join(" ", Enumerable.Repeat("The weather today is sunny and warm.", 60));
        var example = new Example("", "", [new Turn(Role.User, prompt), new Turn(Role.Assistant, "Yes.")]);
        var encoder = new Encoder(Tok, ChatTemplate.Get("chatml"), cutoffLen: 64);
        var answer = Tok.Encode("Yes.<|im_end|>\n");

        var seq = encoder.EncodeSupervised(example)!;

        Assert.Equal(64, seq.Length);
        Assert.Equal(answer.Length, seq.LabelCount);
        Assert.Equal(answer, seq.InputIds[^answer.Length..]);
        Assert.Equal(answer, seq.Labels[^answer.Length..]);
    }

    [Fact]
    public void EncodeSupervised_LongPromptAndLongAnswer_KeepsPartOfBoth()
    {
        var text = string.Join(" ", Enumerable.Repeat("Climate change is one of the most important problems of our time.", 30));
        var example = new Example("", "", [new Turn(Role.User, text), new Turn(Role.Assistant, text)]);
        var encoder = new Encoder(Tok, ChatTemplate.Get("qwen"), cutoffLen: 100);

        var seq = encoder.EncodeSupervised(example)!;

        Assert.Equal(100, seq.Length);
        Assert.InRange(seq.LabelCount, 30, 70);
        // labels are a suffix block: prompt part masked, then the learned answer prefix
        int firstLearned = Array.FindIndex(seq.Labels, l => l != -100);
        Assert.All(seq.Labels[firstLearned..], l => Assert.NotEqual(-100, l));
        Assert.Equal(seq.InputIds[firstLearned..], seq.Labels[firstLearned..]);
    }

    [Fact]
    public void EncodeSupervised_MultiTurnOverCutoff_LaterTurnsDropped()
    {
        var example = new Example("", "", [
            new Turn(Role.User, "Hi"), new Turn(Role.Assistant, "Hello there, how can I help you today?"),
            new Turn(Role.User, "Bye"), new Turn(Role.Assistant, "Goodbye!")]);
        var template = ChatTemplate.Get("chatml");
        var firstTurn = Tok.Encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n").Length
                        + Tok.Encode("Hello there, how can I help you today?<|im_end|>\n").Length;
        var encoder = new Encoder(Tok, template, cutoffLen: firstTurn);

        var seq = encoder.EncodeSupervised(example)!;
        var full = new Encoder(Tok, template, 4096).EncodeSupervised(example)!;

        Assert.Equal(full.InputIds[..firstTurn], seq.InputIds);
        Assert.Equal(full.Labels[..firstTurn], seq.Labels);
    }

    [Fact]
    public void EncodeSupervised_AllAssistantTurnsLearned()
    {
        var example = new Example("", "", [
            new Turn(Role.User, "Hi"), new Turn(Role.Assistant, "Hello!"), new Turn(Role.User, "Bye"), new Turn(Role.Assistant, "Goodbye!")]);

        var seq = new Encoder(Tok, ChatTemplate.Get("chatml"), 4096).EncodeSupervised(example)!;

        var learned = seq.InputIds.Where((_, i) => seq.Labels[i] != -100).ToArray();
        Assert.Equal([.. Tok.Encode("Hello!<|im_end|>\n"), .. Tok.Encode("Goodbye!<|im_end|>\n")], learned);
    }

    [Fact]
    public void EncodeSupervised_CutoffLeavesNoAnswer_SkippedAndCounted()
    {
        const string answer = "The answer is five, the answer is five, the answer is five.";
        using var t = new TempFiles();
        var path = t.Write("d.jsonl",
            "{\"instruction\": \"" + string.Join(" ", Enumerable.Repeat("long prompt words", 200)) + "\", \"output\": \"" + answer + "\"}\n" +
            "{\"instruction\": \"hi\", \"output\": \"ok\"}\n");
        var ds = DatasetLoader.Load(path, null);
        // cutoff = the short example's full length, so it fits whole
        int shortLen = Tok.Encode("Human: hi<|endoftext|>\nAssistant:").Length + Tok.Encode("ok<|endoftext|>\n").Length;
        int longSource = Tok.Encode("Human: " + string.Join(" ", Enumerable.Repeat("long prompt words", 200)) + "<|endoftext|>\nAssistant:").Length;
        int longTarget = Tok.Encode(answer + "<|endoftext|>\n").Length;
        // preconditions for infer_seqlen to give the long example's answer int(cutoff * t / (s + t)) = 0 tokens
        Assert.True(2 * longTarget >= shortLen && shortLen * longTarget < longSource + longTarget);
        var encoder = new Encoder(Tok, ChatTemplate.Get("default"), cutoffLen: shortLen);

        var encoded = encoder.EncodeSupervised(ds);

        Assert.Equal(1, encoded.Skipped);
        Assert.Equal([1], encoded.SkippedLines);
        Assert.Equal(shortLen, encoded.Items.Single().Length);
        Assert.Equal(Tok.Encode("ok<|endoftext|>\n").Length, encoded.Items.Single().LabelCount);
    }

    [Fact]
    public void EncodePairwise_Cutoff_SplitsBudgetWithLongerAnswer()
    {
        var longAnswer = string.Join(" ", Enumerable.Repeat("Blue is the color of the sky.", 20));
        var example = new Example("", "", [new Turn(Role.User, string.Join(" ", Enumerable.Repeat("Pick a color.", 40)))],
            new Turn(Role.Assistant, longAnswer), new Turn(Role.Assistant, "No."));
        var encoder = new Encoder(Tok, ChatTemplate.Get("chatml"), cutoffLen: 80);

        var pair = encoder.EncodePairwise(example)!;

        Assert.Equal(80, pair.Chosen.Length);
        Assert.Equal(pair.Chosen.InputIds[..pair.PromptLength], pair.Rejected.InputIds[..pair.PromptLength]);
        Assert.Equal(Tok.Encode("No.<|im_end|>\n"), pair.Rejected.InputIds[pair.PromptLength..]);
        Assert.All(pair.Chosen.Labels[..pair.PromptLength], l => Assert.Equal(-100, l));
        Assert.Equal(pair.Chosen.Length - pair.PromptLength, pair.Chosen.LabelCount);
    }

    [Fact]
    public void EncodeSupervised_PreferenceExample_Throws()
    {
        var example = new Example("", "", [new Turn(Role.User, "q")], new Turn(Role.Assistant, "a"), new Turn(Role.Assistant, "b"));

        var ex = Assert.Throws<InvalidOperationException>(() => new Encoder(Tok, ChatTemplate.Get("qwen"), 64).EncodeSupervised(example));
        Assert.Contains("dpo", ex.Message);
    }

    [Fact]
    public void EncodeSupervised_SharedDatasetsAllTemplates_EveryExampleHasLabels()
    {
        foreach (var template in ChatTemplate.Names)
        {
            var encoder = new Encoder(Tok, ChatTemplate.Get(template), cutoffLen: 1024);
            foreach (var file in new[] { "identity.json", "glaive_toolcall_en_demo.json" })
            {
                var encoded = encoder.EncodeSupervised(DatasetLoader.Load(RepoPaths.Data(file), null));
                Assert.Equal(0, encoded.Skipped);
                Assert.All(encoded.Items, s =>
                {
                    Assert.InRange(s.Length, 1, 1024);
                    Assert.True(s.LabelCount > 0);
                    Assert.All(s.InputIds, id => Assert.InRange(id, 0, 1023));
                });
            }
            var pairs = encoder.EncodePairwise(DatasetLoader.Load(RepoPaths.Data("dpo_en_demo.json"), null));
            Assert.Equal(300, pairs.Items.Count + pairs.Skipped);
            Assert.All(pairs.Items, p => Assert.InRange(p.Chosen.Length, 1, 1024));
        }
    }

    [Fact]
    public void EncodeSupervised_Alpaca999Rows_EncodesEveryRowAndPrintsItsSpeed()
    {
        var load = Stopwatch.StartNew();
        var ds = DatasetLoader.Load(RepoPaths.Data("alpaca_en_demo.json"), null);
        load.Stop();
        output.WriteLine($"alpaca_en_demo: loaded and validated in {load.Elapsed.TotalMilliseconds:F0} ms");
        var encoder = new Encoder(Tok, ChatTemplate.Get("qwen"), cutoffLen: 2048);
        encoder.EncodeSupervised(ds.Examples[0]); // warm up the native library

        var sw = Stopwatch.StartNew();
        var encoded = encoder.EncodeSupervised(ds);
        sw.Stop();

        long tokens = encoded.Items.Sum(s => (long)s.Length);
        output.WriteLine($"alpaca_en_demo: {encoded.Items.Count} rows, {tokens} tokens in {sw.Elapsed.TotalMilliseconds:F0} ms " +
                         $"({tokens / sw.Elapsed.TotalSeconds:F0} tokens/s)");
        // The speed is printed, not asserted: performance belongs in benchmarks (docs/benchmarks.md).
        Assert.Equal(999, encoded.Items.Count);
        Assert.All(encoded.Items, s => Assert.Contains(s.Labels, l => l != EncodedSequence.IgnoreIndex));
    }
}
