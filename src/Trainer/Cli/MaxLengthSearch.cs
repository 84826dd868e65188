using LongSeqService.Trainer.Parallel;
using System.Globalization;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer bench --find-max-len --rank-memory-limit BYTES --sp N[,…]</c>: for each SP size, the longest
/// sequence (to within 5%) whose training step keeps every rank's peak resident memory at or under the
/// limit, with gradient checkpointing on — 360-LLaMA-Factory's "max length by SP size" table, measured
/// here. Each probe is a fresh launch of the ranks as processes (one SFT step, full fine-tuning, batch 1,
/// exactly T tokens, T a multiple of 2N), so each rank's VmHWM is its own and starts clean; a probe is stopped
/// as soon as a rank's resident memory passes the limit (it cannot fit any more).
/// The search doubles T from --min-len until a probe goes over the limit, then bisects.
/// </summary>
public static class MaxLengthSearch
{
    private const double Precision = 0.05;

    public static int Run(CliArgs cli)
    {
        var model = cli.Require("model", "builtin:tiny-llama");
        var shape = CheckRuns.Shape(model);
        long limit = ParseBytes(cli.Require("rank_memory_limit", "2G"));
        var sizes = cli.Has("sp") ? cli.IntList("sp", "1,2,4") : [1, 2, 4];
        var dtype = CheckRuns.ParseDtype(cli.Get("dtype"));
        int minLen = CliArgs.ParseSize(cli.Get("min_len") ?? "1024"), maxLen = CliArgs.ParseSize(cli.Get("max_len") ?? "1048576");
        bool json = cli.Has("json");
        var rows = new JsonArray();
        foreach (var n in sizes)
        {
            var spec = new JobSpec
            {
                ModelNameOrPath = model, Dataset = "(synthetic)", SequenceParallelSize = n, SequenceParallelMode = SequenceParallelPlan.ParseMode(cli.Get("mode") ?? "zigzag-ring"),
                UlyssesDegree = cli.Get("ulysses_degree") is { } u ? int.Parse(u, CultureInfo.InvariantCulture) : null,
                LearningRate = 1e-4, LrSchedulerType = LrSchedulerType.Constant, Bf16 = dtype == ScalarType.BFloat16,
                GradientCheckpointing = true, LoggingSteps = 1, Launch = Launch.Processes,
            };
            CheckRuns.Validate(spec, shape);
            int threads = cli.Int("threads_per_rank", Math.Max(1, Environment.ProcessorCount / n));
            var row = Search(spec, shape, dtype, limit, minLen, maxLen, threads, Console.Error, BenchCommand.Knobs(cli));          // probes on stderr: stdout stays the table or JSON
            rows.Add(row);
            if (!json)
                Console.WriteLine($"sp={n}  max_len {row["max_len"],7}  (limit {limit / 1048576} MiB per rank; {row["probes"]!.AsArray().Count} probes" +
                                  (row["capped"]!.GetValue<bool>() ? $"; fits at --max-len {maxLen}" : "") + ")");
        }
        if (rows.Count > 1 && rows[0]!["max_len"]!.GetValue<int>() > 0)
            foreach (var r in rows) r!["vs_first"] = Math.Round(r["max_len"]!.GetValue<int>() / (double)rows[0]!["max_len"]!.GetValue<int>(), 3);
        if (json) Console.WriteLine(rows.ToJsonString());
        return 0;
    }

    /// <summary>Longest fitting multiple of 2N: doubling, then bisection until the bracket is within 5%.</summary>
    public static JsonObject Search(JobSpec spec, ModelShape shape, ScalarType dtype, long limit, int minLen, int maxLen, int threads, TextWriter? trace,
        RunOptions? knobs = null)
    {
        int unit = 2 * spec.SequenceParallelSize;
        int Round(long t) => (int)Math.Max(unit, t / unit * unit);
        var probes = new JsonArray();
        bool Fits(int t)
        {
            var probe = Probe(spec with { CutoffLen = t }, shape, dtype, t, limit, threads, knobs);
            probes.Add(probe);
            trace?.WriteLine($"  sp={spec.SequenceParallelSize} T={t,7}: max rank peak {probe["max_rank_peak_bytes"]?.GetValue<long>() / 1048576} MiB " +
                             (probe["fits"]!.GetValue<bool>() ? "fits" : "over") + (probe["error"] is { } e ? $" ({e})" : ""));
            return probe["fits"]!.GetValue<bool>();
        }

        int lo = 0, hi = int.MaxValue, t = Round(minLen);
        bool capped = false;
        while (true)
        {
            if (!Fits(t)) { hi = t; break; }
            lo = t;
            if (t >= maxLen) { capped = true; break; }
            t = Math.Min(Round(2L * t), Round(maxLen));
        }
        while (!capped && hi - lo > unit && (lo == 0 || hi > lo * (1 + Precision)))
        {
            int mid = Round((lo + (long)hi) / 2);
            if (mid <= lo || mid >= hi) break;
            if (Fits(mid)) lo = mid; else hi = mid;
        }
        return new JsonObject
        {
            ["sp"] = spec.SequenceParallelSize, ["mode"] = spec.SequenceParallelMode.Wire(), ["model"] = spec.ModelNameOrPath,
            ["dtype"] = dtype.ToString().ToLowerInvariant(), ["rank_memory_limit_bytes"] = limit, ["max_len"] = lo,
            ["first_over_limit"] = hi == int.MaxValue ? null : hi, ["capped"] = capped, ["probes"] = probes,
        };
    }

    private static JsonObject Probe(JobSpec spec, ModelShape shape, ScalarType dtype, int seqLen, long limit, int threads, RunOptions? knobs)
    {
        try
        {
            // A probe over the limit is stopped as soon as a rank passes it: no need to finish its step.
            var r = BenchCommand.MeasureProcesses(spec, shape, dtype, seqLen, steps: 1, warmup: 0, threads, (knobs ?? new RunOptions()) with { StopAboveRankBytes = limit });
            var peaks = r["rank_peak_bytes"]!.AsArray().Select(p => (long)p!).ToArray();
            return new JsonObject
            {
                ["seq_len"] = seqLen, ["max_rank_peak_bytes"] = peaks.Max(), ["fits"] = peaks.Max() <= limit,
                ["rank_peak_bytes"] = r["rank_peak_bytes"]!.DeepClone(), ["rank_baseline_bytes"] = r["rank_baseline_bytes"]!.DeepClone(),
                ["step_seconds"] = r["step_seconds"]!.DeepClone(),
            };
        }
        catch (RankMemoryLimitException e)
        {
            return new JsonObject { ["seq_len"] = seqLen, ["fits"] = false, ["max_rank_peak_bytes"] = e.Bytes, ["stopped_early"] = true, ["error"] = e.Message };
        }
        catch (Exception e) when (e is not CliException)
        {
            // A probe that cannot run (a rank killed for memory, say) does not fit.
            return new JsonObject { ["seq_len"] = seqLen, ["fits"] = false, ["error"] = e.Message };
        }
    }

    /// <summary>Bytes with an optional binary suffix: 1536M, 2G, 2.5G, 800000000.</summary>
    public static long ParseBytes(string s, string option = "rank-memory-limit")
    {
        var t = s.Trim().ToUpperInvariant().TrimEnd('B').TrimEnd('I');
        long unit = t.EndsWith('K') ? 1L << 10 : t.EndsWith('M') ? 1L << 20 : t.EndsWith('G') ? 1L << 30 : 1;
        if (unit > 1) t = t[..^1];
        return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0
            ? (long)(v * unit)
            : throw new CliException($"--{option}: expected bytes like 2G or 1536M, got '{s}'");
    }
}
