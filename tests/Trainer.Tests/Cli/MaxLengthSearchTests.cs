using System.Diagnostics;
using System.Text.Json.Nodes;
using LongSeqService.Trainer.Tests.Mpi;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary><c>trainer bench --find-max-len</c>: probes as rank processes under a per-rank memory limit.</summary>
public class MaxLengthSearchTests
{
    private static JsonObject Search(string limit, int minLen, int maxLen)
    {
        var r = TrainerProcess.Run(RepoPaths.Root, TimeSpan.FromMinutes(3), "bench", "--find-max-len", "--rank-memory-limit", limit, "--sp", "1",
            "--min-len", minLen.ToString(), "--max-len", maxLen.ToString(), "--model", "builtin:tiny-llama", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonNode.Parse(r.Stdout.Trim())!.AsArray().Single()!.AsObject();
    }

    [MpiFact]
    public void FindMaxLen_ProbeUnderTheLimit_FitsWithItsMeasuredPeak()
    {
        var row = Search("4G", 256, 256);

        Assert.True((bool)row["capped"]!);
        Assert.Equal(256, (int)row["max_len"]!);
        var probe = row["probes"]!.AsArray().Single()!;
        Assert.True((bool)probe["fits"]!);
        Assert.InRange((long)probe["max_rank_peak_bytes"]!, 1, 4L << 30);
        Assert.Null(probe["stopped_early"]);
    }

    /// <summary>A limit under what a rank needs to load the model: the probe is stopped once the rank passes it, not
    /// run to the end of its step (at 16k tokens that step would take minutes).</summary>
    [MpiFact]
    public void FindMaxLen_ProbeOverTheLimit_IsStoppedAsSoonAsARankPassesIt()
    {
        var watch = Stopwatch.StartNew();
        var row = Search("96M", 16384, 16384);
        watch.Stop();

        Assert.Equal(0, (int)row["max_len"]!);                          // nothing fits: the search bisected down to 2·SP tokens
        var probes = row["probes"]!.AsArray();
        Assert.Equal(16384, (int)probes[0]!["seq_len"]!);
        Assert.All(probes, p =>
        {
            Assert.False((bool)p!["fits"]!);
            Assert.True((bool)p["stopped_early"]!);
            Assert.True((long)p["max_rank_peak_bytes"]! > 96L << 20);
            Assert.Contains("rank 0 passed the per-rank limit", (string)p["error"]!);
        });
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30 * probes.Count), $"{probes.Count} over-limit probes took {watch.Elapsed}");
    }
}
