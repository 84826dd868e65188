using System.Text.Json.Nodes;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Parallel;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary><c>trainer bench --dataset</c>: packing vs padding on real data, and the attention work each ring rank gets.</summary>
public class DataBenchTests
{
    /// <summary>Against a count of every (query, key) pair one by one: same document, key at or before the query.</summary>
    [Theory]
    [InlineData(2, true)]
    [InlineData(3, true)]
    [InlineData(4, false)]
    public void AttentionWork_PerRank_EqualsThePairsCountedOneByOne(int ranks, bool zigzag)
    {
        var rng = new Random(ranks);
        var docs = new List<int>();
        for (int d = 0; docs.Count < 200; d++) docs.AddRange(Enumerable.Repeat(d, rng.Next(1, 40)));
        var positions = docs.Select((d, i) => i - docs.IndexOf(d)).ToArray();
        var layout = zigzag ? RingLayout.Zigzag : RingLayout.Contiguous;

        var counted = AttentionWork.PerRank(positions, layout, ranks);

        int multiple = Collator.SequenceParallelMultiple(ranks), padded = (docs.Count + multiple - 1) / multiple * multiple;
        for (int r = 0; r < ranks; r++)
        {
            var mine = zigzag ? ZigzagSplit.Indices(r, ranks, padded) : ZigzagSplit.ContiguousIndices(r, ranks, padded);
            long expected = mine.Where(q => q < docs.Count).Sum(q => Enumerable.Range(0, (int)q + 1).LongCount(k => docs[k] == docs[(int)q]));
            Assert.Equal(expected, counted[r]);
        }
    }

    [Fact]
    public void Bench_DatasetPacked_ReportsUsefulTokensAndEachRanksAttentionWork()
    {
        var r = TrainerProcess.Run(RepoPaths.Root, "bench", "--dataset", RepoPaths.Data("alpaca_en_demo.json"), "--model", "builtin:tiny-llama",
            "--cutoff-len", "512", "--packing", "true", "--sp", "2", "--steps", "1", "--warmup", "0", "--max-samples", "24", "--json");

        Assert.True(r.ExitCode == 0, r.ToString());
        var o = JsonNode.Parse(r.Stdout.Trim())!.AsObject();
        Assert.True((bool)o["packing"]!);
        Assert.InRange((double)o["label_tokens_per_step"]!, 1, (double)o["tokens_per_step"]!);
        Assert.True((double)o["label_tokens_per_sec"]! > 0);
        Assert.InRange((long)o["label_tokens"]!, 1, (long)o["tokens"]!);
        var pairs = o["attention_pairs"]!.AsObject();
        Assert.Equal("zigzag", (string)pairs["layout"]!);
        Assert.Equal(2, pairs["rank_total"]!.AsArray().Count);
        Assert.Equal((int)o["rows"]!, (int)pairs["rows"]!);
        Assert.Contains(o["notes"]!.AsArray(), n => ((string)n!).StartsWith("packed 24 examples"));
    }

    [Theory]
    [InlineData("--seq-len", "2048", "--cutoff-len")]
    [InlineData("--launch", "processes", "threads")]
    public void Bench_DatasetWithAnOptionItCannotHonour_ExitsTwoSayingWhatWorks(string key, string value, string suggestion)
    {
        var r = TrainerProcess.Run(RepoPaths.Root, "bench", "--dataset", RepoPaths.Data("alpaca_en_demo.json"), "--model", "builtin:tiny-llama", key, value);

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(key, r.Stderr);
        Assert.Contains(suggestion, r.Stderr);
    }

    [Fact]
    public void Bench_DatasetWithABadPackingValue_ExitsTwoNamingTheKey()
    {
        var r = TrainerProcess.Run(RepoPaths.Root, "bench", "--dataset", RepoPaths.Data("alpaca_en_demo.json"), "--model", "builtin:tiny-llama", "--packing", "maybe");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("--packing", r.Stderr);
    }
}
