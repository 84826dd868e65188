using System.Diagnostics;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer bench</c>: for each sequence length × SP size, a warm-up run, then timed optimizer steps
/// (SFT, batch 1, full fine-tuning) on one sequence of exactly T tokens. Reports tokens/s, step time,
/// the time each rank spent in attention (forward + backward, to show the balance) and memory — with
/// <c>--launch processes</c> each rank's own (<c>rank_baseline_bytes</c>, <c>rank_peak_bytes</c>).
/// <c>--find-max-len</c> searches the longest trainable sequence per SP size under a per-rank memory
/// limit instead (<see cref="MaxLengthSearch"/>). <c>--mpi_hosts A:2,B:2</c> (with <c>--launch processes</c>)
/// measures a world across hosts.
/// </summary>
public static class BenchCommand
{
    private static readonly string[] Known =
        ["model", "seq_len", "sp", "mode", "dtype", "steps", "warmup", "threads_per_rank", "gradient_checkpointing", "ulysses_degree", "json",
         "launch", "find_max_len", "rank_memory_limit", "min_len", "max_len", "loss_chunk_tokens", "mlp_tile_tokens", "dp", "zero_stage", "mpi_hosts"];

    /// <summary>The working-set knobs a job takes from their rules, overridable here to measure their effect.</summary>
    internal static RunOptions Knobs(CliArgs cli) =>
        new(LossChunkTokens: cli.Has("loss_chunk_tokens") ? cli.Int("loss_chunk_tokens", 0) : null,
            MlpTileTokens: cli.Has("mlp_tile_tokens") ? cli.Int("mlp_tile_tokens", 0) : null);

    public static int Run(string[] args)
    {
        var cli = CliArgs.Parse(args, new HashSet<string> { "json", "gradient_checkpointing", "find_max_len" });
        cli.RejectUnknown([.. Known, .. DataBench.Keys]);
        if (cli.Has("dataset")) return DataBench.Run(cli);
        if (cli.Has("find_max_len")) return MaxLengthSearch.Run(cli);
        var model = cli.Require("model", "builtin:tiny-llama");
        var shape = CheckRuns.Shape(model);
        var lengths = cli.IntList("seq_len", "2048,8192");
        var sizes = cli.Has("sp") ? cli.IntList("sp", "1,2") : [1];
        var dtype = CheckRuns.ParseDtype(cli.Get("dtype"));
        int steps = cli.Int("steps", 3), warmup = cli.Int("warmup", 1);
        var knobs = Knobs(cli);
        var config = ModelFlops.Config(model);
        var results = new JsonArray();
        var peaks = new Dictionary<int, double>();                  // matmul GFLOP/s by threads, measured once each
        foreach (var t in lengths)
            foreach (var n in sizes)
            {
                int threads = cli.Int("threads_per_rank", Math.Max(1, Environment.ProcessorCount / (n * cli.Int("dp", 1))));
                var spec = new JobSpec
                {
                    ModelNameOrPath = model, Dataset = "(synthetic)", SequenceParallelSize = n,
                    SequenceParallelMode = SequenceParallelPlan.ParseMode(cli.Get("mode") ?? "zigzag-ring"), UlyssesDegree = cli.Get("ulysses_degree") is { } u ? int.Parse(u) : null,
                    CutoffLen = t, LearningRate = 1e-4, LrSchedulerType = LrSchedulerType.Constant, Bf16 = dtype == ScalarType.BFloat16,
                    GradientCheckpointing = cli.Has("gradient_checkpointing"), LoggingSteps = 1, Launch = CheckRuns.ParseLaunch(cli.Get("launch")),
                    DataParallelSize = cli.Int("dp", 1), ZeroStage = cli.Int("zero_stage", 0), MpiHosts = cli.Get("mpi_hosts"),
                };
                CheckRuns.Validate(spec, shape);
                var r = Measure(spec, shape, dtype, t, steps, warmup, threads, knobs);
                if (!peaks.ContainsKey(threads)) peaks[threads] = ModelFlops.MatmulPeakGflops(threads, dtype);
                AddUtilisation(r, config, t, n, peaks[threads]);
                results.Add(r);
                if (!cli.Has("json"))
                    Console.WriteLine($"T={t,6} sp={n} dp={spec.DataParallelSize} zero={spec.ZeroStage} {spec.SequenceParallelMode.Wire(),-11} {dtype.ToString().ToLowerInvariant(),-8} threads/rank={threads}  " +
                        $"{r["tokens_per_sec"],8} tok/s  step {r["step_seconds"]} s  attention compute/rank [{string.Join(", ", r["rank_attention_compute_seconds"]!.AsArray())}] s " +
                        $"wait [{string.Join(", ", r["rank_attention_wait_seconds"]!.AsArray())}] s (imbalance {r["attention_imbalance"]})  " + Memory(r) +
                        $"  MFU {r["mfu"]} of {r["matmul_peak_gflops_per_rank"]} GFLOP/s per rank" +
                        (r["rank_model_state_bytes"] is JsonArray states ? $"  model states/rank [{string.Join(", ", states.Select(b => (long)b! / 1048576))}] MiB, their collectives {r["state_communication_seconds"]} s/step" : ""));
            }
        if (cli.Has("json")) Console.WriteLine(results.ToJsonString());
        return 0;
    }

    /// <summary>Each rank's model-state bytes (weights + gradients + optimizer state, measured from its tensors).</summary>
    private static JsonArray StateBytes(RunResult result) => new(result.RankModelStateBytes.Select(r => (JsonNode)r.Sum()).ToArray());

    private static string Memory(JsonObject r) => r["rank_peak_bytes"] is JsonArray peaks
        ? $"rank peak−baseline [{string.Join(", ", peaks.Zip(r["rank_baseline_bytes"]!.AsArray(), (p, b) => ((long)p! - (long)b!) / 1048576))}] MiB " +
          $"(peak [{string.Join(", ", peaks.Select(p => (long)p! / 1048576))}] MiB)"
        : $"peak {(long)r["peak_bytes"]! / 1048576} MiB";

    /// <summary>Model-FLOP utilisation: model FLOPs per second (<see cref="ModelFlops.PerToken"/>) over the matmul peak of all ranks.</summary>
    private static void AddUtilisation(JsonObject r, Model.ModelConfig config, int seqLen, int ranks, double peakGflopsPerRank)
    {
        double flops = ModelFlops.PerToken(config, seqLen) * r["tokens_per_sec"]!.GetValue<double>();
        r["model_flops_per_token"] = ModelFlops.PerToken(config, seqLen);
        r["model_gflops_per_sec"] = Math.Round(flops / 1e9, 2);
        r["matmul_peak_gflops_per_rank"] = Math.Round(peakGflopsPerRank, 1);
        r["mfu"] = Math.Round(flops / 1e9 / (peakGflopsPerRank * ranks), 4);
    }

    public static JsonObject Measure(JobSpec spec, ModelShape shape, ScalarType dtype, int seqLen, int steps, int warmup, int threadsPerRank, RunOptions? knobs = null)
    {
        if (spec.Launch == Launch.Processes) return MeasureProcesses(spec, shape, dtype, seqLen, steps, warmup, threadsPerRank, knobs);
        var options = (knobs ?? new RunOptions()) with { IntraOpThreadsPerRank = threadsPerRank };
        int count = Math.Max(steps, warmup) * spec.DataParallelSize;
        if (warmup > 0) new TrainingRun(CheckRuns.Prepare(spec with { MaxSteps = warmup }, shape, dtype, count, seqLen, exactLength: true), options: options).Execute();

        NativeMemory.Trim();
        NativeMemory.ResetPeak();
        long baseline = NativeMemory.ResidentBytes();
        var clock = new StepClock();
        var result = new TrainingRun(CheckRuns.Prepare(spec with { MaxSteps = steps }, shape, dtype, count, seqLen, exactLength: true), clock, options).Execute();
        double stepSeconds = clock.Seconds.Average();
        return AddAttention(result.RankAttention, steps, new JsonObject
        {
            ["model"] = spec.ModelNameOrPath, ["seq_len"] = seqLen, ["sp"] = spec.SequenceParallelSize, ["mode"] = spec.SequenceParallelMode.Wire(),
            ["dtype"] = dtype.ToString().ToLowerInvariant(), ["threads_per_rank"] = threadsPerRank, ["steps"] = steps,
            ["gradient_checkpointing"] = spec.GradientCheckpointing,
            ["step_seconds"] = Math.Round(stepSeconds, 4),
            ["tokens_per_sec"] = Math.Round(seqLen * spec.DataParallelSize / stepSeconds, 1),
            ["dp"] = spec.DataParallelSize, ["zero_stage"] = spec.ZeroStage,
            ["rank_model_state_bytes"] = StateBytes(result),
            ["state_communication_seconds"] = Math.Round(result.StateCommunicationSeconds / steps, 4),
            ["baseline_bytes"] = baseline,
            ["peak_bytes"] = NativeMemory.PeakResidentBytes(),
            ["memory_scope"] = "process (ranks are threads)",
        });
    }

    /// <summary>
    /// Ranks as processes: one launch of warm-up + timed steps (a fresh process has nothing to warm
    /// otherwise). Step times are the main rank's own clock; memory is each rank's: its baseline once the
    /// model is loaded and its peak (VmHWM, restarted at the baseline) over the steps.
    /// </summary>
    public static JsonObject MeasureProcesses(JobSpec spec, ModelShape shape, ScalarType dtype, int seqLen, int steps, int warmup, int threadsPerRank,
        RunOptions? knobs = null)
    {
        var options = (knobs ?? new RunOptions()) with { IntraOpThreadsPerRank = threadsPerRank };
        var watch = new RankWatch();
        var result = new TrainingRun(CheckRuns.Prepare(spec with { MaxSteps = warmup + steps }, shape, dtype, (warmup + steps) * spec.DataParallelSize, seqLen, exactLength: true),
            watch, options).Execute();
        var timed = watch.StepSeconds.Skip(warmup).ToArray();
        var peaks = watch.LastRecord!["rank_peak_bytes"]!.AsArray().Select(p => (long)p!).ToArray();
        var baselines = watch.LastRecord!["rank_baseline_bytes"]!.AsArray().Select(p => (long)p!).ToArray();
        double stepSeconds = timed.Average();
        return AddAttention(result.RankAttention, warmup + steps, new JsonObject
        {
            ["model"] = spec.ModelNameOrPath, ["seq_len"] = seqLen, ["sp"] = spec.SequenceParallelSize, ["mode"] = spec.SequenceParallelMode.Wire(),
            ["dtype"] = dtype.ToString().ToLowerInvariant(), ["threads_per_rank"] = threadsPerRank, ["steps"] = steps, ["launch"] = "processes",
            ["gradient_checkpointing"] = spec.GradientCheckpointing,
            ["step_seconds"] = Math.Round(stepSeconds, 4),
            ["tokens_per_sec"] = Math.Round(seqLen * spec.DataParallelSize / stepSeconds, 1),
            ["dp"] = spec.DataParallelSize, ["zero_stage"] = spec.ZeroStage,
            ["rank_model_state_bytes"] = StateBytes(result),
            ["state_communication_seconds"] = Math.Round(result.StateCommunicationSeconds / (warmup + steps), 4),
            ["rank_baseline_bytes"] = new JsonArray(baselines.Select(b => (JsonNode)b).ToArray()),
            ["rank_peak_bytes"] = new JsonArray(peaks.Select(b => (JsonNode)b).ToArray()),
            ["rank_activation_bytes"] = new JsonArray(peaks.Zip(baselines, (p, b) => (JsonNode)(p - b)).ToArray()),
            ["memory_scope"] = "per rank (ranks are processes)",
        });
    }

    /// <summary>
    /// Attention time per rank and step, split into compute and time blocked on peers. The balance is
    /// judged on compute: a rank with less work (contiguous ring) finishes early and then *waits*, so its
    /// total looks like everyone else's while its compute is visibly smaller.
    /// </summary>
    private static JsonObject AddAttention(IReadOnlyList<AttentionTimer> timers, int steps, JsonObject r)
    {
        var total = timers.Select(a => a.Total.TotalSeconds / steps).ToArray();
        var wait = timers.Select(a => a.CommunicationWait.TotalSeconds / steps).ToArray();
        var compute = total.Zip(wait, (t, w) => t - w).ToArray();
        JsonArray Round(double[] v) => new(v.Select(x => (JsonNode)Math.Round(x, 4)).ToArray());
        r["rank_attention_seconds"] = Round(total);
        r["rank_attention_compute_seconds"] = Round(compute);
        r["rank_attention_wait_seconds"] = Round(wait);
        r["attention_imbalance"] = Math.Round(compute.Max() / Math.Max(compute.Min(), 1e-9) - 1, 4);
        return r;
    }

    /// <summary>Step times from the main rank's clock (elapsed between step ends) and the last log record (per-rank memory).</summary>
    private sealed class RankWatch : ITrainingObserver
    {
        private double _last;
        public List<double> StepSeconds { get; } = [];
        public JsonObject? LastRecord { get; private set; }
        public void OnStep(ProgressInfo progress, StepMetrics metrics)
        {
            StepSeconds.Add(progress.ElapsedSeconds - _last);
            _last = progress.ElapsedSeconds;
        }
        public void OnLog(JsonObject record) => LastRecord = record;
    }

    /// <summary>Wall time of each optimizer step, measured on the main rank between step completions.</summary>
    internal sealed class StepClock : ITrainingObserver
    {
        private readonly Stopwatch _watch = new();
        public List<double> Seconds { get; } = [];
        public void OnStart(int firstStep, int totalSteps) => _watch.Restart();
        public void OnStep(ProgressInfo progress, StepMetrics metrics)
        {
            Seconds.Add(_watch.Elapsed.TotalSeconds);
            _watch.Restart();
        }
    }
}
