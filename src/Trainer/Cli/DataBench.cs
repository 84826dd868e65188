using System.Globalization;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer bench --dataset FILE --model DIR --cutoff-len T --packing true|false …</c>: timed SFT steps on a real
/// dataset, as a job would train it (its template, truncation, packing or padding, batch size), so packing and
/// padding can be compared on what matters — <b>useful tokens per second</b>, the label-bearing tokens that reach
/// the loss. Ranks are threads (the attention timers of every rank are in this process). Also reports, for
/// the ring layouts, the attention work of each rank: the same-document causal (query, key) pairs its tokens
/// attend to — exactly what the varlen ring computes (<see cref="VarlenBlock"/> runs only same-document
/// sub-blocks) — per step, with the imbalance max/min − 1, so the zigzag balance with packed documents is a
/// count, not only a (noisy, shared-core) time.
/// </summary>
public static class DataBench
{
    public static readonly string[] Keys = ["dataset", "template", "cutoff_len", "packing", "batch_size", "max_samples"];

    public static int Run(CliArgs cli)
    {
        // What the synthetic bench takes and a real-data run cannot honour is refused, not ignored.
        if (cli.Has("seq_len")) throw new CliException("--seq-len: with --dataset the rows are the data's; give --cutoff-len (truncation, or the packed row length)");
        if (cli.Get("launch") is { } launch && launch != "threads")
            throw new CliException($"--launch {launch}: bench --dataset runs its ranks as threads (every rank's attention timer in one process); use --launch threads or leave it out");
        if (cli.Has("find_max_len")) throw new CliException("--find-max-len searches synthetic lengths; leave out --dataset");
        var model = cli.Require("model", "/models/qwen2.5-0.5b (a model directory with tokenizer.json)");
        var dataset = Path.GetFullPath(cli.Require("dataset", "data/alpaca_en_demo.json"));
        bool packing = cli.Bool("packing", false);
        int sp = cli.Int("sp", 1), steps = cli.Int("steps", 3), warmup = cli.Int("warmup", 1);
        var dtype = CheckRuns.ParseDtype(cli.Get("dtype"));
        var output = Directory.CreateTempSubdirectory("longseq-databench-").FullName;
        try
        {
            var spec = new JobSpec
            {
                ModelNameOrPath = model, Dataset = dataset, Template = cli.Get("template"), CutoffLen = CliArgs.ParseSize(cli.Get("cutoff_len") ?? "4096"),
                Packing = packing, NeatPacking = packing ? true : null, PerDeviceTrainBatchSize = cli.Int("batch_size", 1),
                MaxSamples = cli.Has("max_samples") ? cli.Int("max_samples", 0) : null,
                SequenceParallelSize = sp, SequenceParallelMode = SequenceParallelPlan.ParseMode(cli.Get("mode") ?? "zigzag-ring"),
                UlyssesDegree = cli.Get("ulysses_degree") is { } u ? int.Parse(u, CultureInfo.InvariantCulture) : null,
                LearningRate = 1e-5, LrSchedulerType = LrSchedulerType.Constant, Bf16 = dtype == TorchSharp.torch.ScalarType.BFloat16,
                GradientCheckpointing = cli.Has("gradient_checkpointing"), LoggingSteps = 1, MaxSteps = Math.Max(1, warmup + steps),
                DataParallelSize = cli.Int("dp", 1), ZeroStage = cli.Int("zero_stage", 0),
                OutputDir = output, OverwriteOutputDir = true, Launch = Launch.Threads,
            };
            var prep = RunPreparation.Prepare(spec, Environment.CurrentDirectory, dtype) with { OutputDir = null }; // measured, nothing saved
            int threads = cli.Int("threads_per_rank", Math.Max(1, Environment.ProcessorCount / spec.WorldSize));
            var r = new JsonObject
            {
                ["model"] = model, ["dataset"] = Path.GetFileName(dataset), ["cutoff_len"] = spec.CutoffLen, ["packing"] = packing,
                ["batch_size"] = spec.PerDeviceTrainBatchSize, ["sp"] = sp, ["dp"] = spec.DataParallelSize, ["zero_stage"] = spec.ZeroStage, ["mode"] = spec.SequenceParallelMode.Wire(),
                ["dtype"] = dtype.ToString().ToLowerInvariant(), ["gradient_checkpointing"] = spec.GradientCheckpointing,
                ["threads_per_rank"] = threads, ["rows"] = prep.Train.Count,
                ["label_tokens"] = LabelTokens(prep.Train), ["tokens"] = prep.Train.PaddedRowTokens().Sum(n => (long)n),
                ["notes"] = new JsonArray(prep.Notes.Select(n => (JsonNode)n).ToArray()),
            };
            if (steps > 0) Time(prep, r, steps, warmup, threads, cli);          // --steps 0: the data and layout figures only
            if (AttentionWork.Layout(spec.SequenceParallelMode) is { } layout)
                r["attention_pairs"] = AttentionWork.Summary(AttentionWork.RowPositions(prep.Train), layout, sp);
            if (cli.Has("json")) Console.WriteLine(r.ToJsonString());
            else
                Console.WriteLine($"{Path.GetFileName(dataset)} cutoff {spec.CutoffLen} packing={packing} batch {spec.PerDeviceTrainBatchSize} sp={sp} {spec.SequenceParallelMode.Wire()}: " +
                                  (steps > 0 ? $"{r["label_tokens_per_sec"]} label tok/s, {r["tokens_per_sec"]} tok/s, step {r["step_seconds"]} s, {r["label_tokens_per_step"]} label tokens/step" : $"{r["rows"]} rows") +
                                  (r["attention_pairs"] is JsonObject a ? $"; attention pairs per rank imbalance mean {a["mean_imbalance"]}, max {a["max_imbalance"]}" : ""));
            return 0;
        }
        finally
        {
            try { Directory.Delete(output, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Warm-up and timed steps: tokens and label tokens per second, and each rank's attention compute time.</summary>
    private static void Time(PreparedRun prep, JsonObject r, int steps, int warmup, int threads, CliArgs cli)
    {
        var clock = new BenchCommand.StepClock();
        var result = new TrainingRun(prep, clock, BenchCommand.Knobs(cli) with { IntraOpThreadsPerRank = threads }).Execute();
        var timed = result.History.Skip(warmup).ToArray();
        double seconds = clock.Seconds.Skip(warmup).Sum();
        r["steps"] = timed.Length;
        r["step_seconds"] = Math.Round(seconds / timed.Length, 3);
        r["tokens_per_sec"] = Math.Round(timed.Sum(m => m.Tokens) / seconds, 2);
        r["label_tokens_per_sec"] = Math.Round(timed.Sum(m => m.LabelTokens) / seconds, 2);
        r["label_tokens_per_step"] = Math.Round(timed.Average(m => (double)m.LabelTokens), 1);
        r["tokens_per_step"] = Math.Round(timed.Average(m => (double)m.Tokens), 1);
        r["rank_attention_compute_seconds"] = new JsonArray(result.RankAttention
            .Select(a => (JsonNode)Math.Round((a.Total - a.CommunicationWait).TotalSeconds / result.History.Count, 4)).ToArray());
    }

    /// <summary>Every label-bearing token of the data (one epoch's useful work).</summary>
    private static long LabelTokens(TrainingData data) =>
        data.Packed?.Sum(r => (long)r.LabelCount) ?? data.Sft?.Sum(s => (long)SftObjective.ShiftedLabelCount(s)) ?? 0;
}

/// <summary>
/// The attention work of each ring rank for a batch row, counted: a token at position p of its document attends
/// to p + 1 keys (causal, same document — position ids restart per packed example), and the layout decides
/// which tokens a rank holds. The row is padded as the trainer's collator pads it (to 2·SP, every layout); padding
/// attends to nothing.
/// </summary>
public static class AttentionWork
{
    public static RingLayout? Layout(SequenceParallelMode mode) => mode switch
    {
        SequenceParallelMode.ZigzagRing => RingLayout.Zigzag,
        SequenceParallelMode.Ring => RingLayout.Contiguous,
        _ => null,                                   // ulysses/hybrid split heads: every rank sees every token
    };

    /// <summary>Each row's position ids (per document for packed rows, 0..L−1 otherwise).</summary>
    public static IEnumerable<int[]> RowPositions(TrainingData data) =>
        data.Packed?.Select(r => r.PositionIds)
        ?? data.Sft?.Select(s => Enumerable.Range(0, s.Length).ToArray())
        ?? throw new ArgumentException("attention pairs are counted for SFT and packed rows");

    /// <summary>Same-document causal pairs per rank for one row.</summary>
    public static long[] PerRank(int[] positions, RingLayout layout, int ranks)
    {
        int multiple = Collator.SequenceParallelMultiple(ranks);                 // padded as the trainer's collator pads it
        long padded = (positions.Length + multiple - 1) / multiple * multiple;
        var pairs = new long[ranks];
        for (int r = 0; r < ranks; r++)
            foreach (var i in layout == RingLayout.Zigzag ? ZigzagSplit.Indices(r, ranks, padded) : ZigzagSplit.ContiguousIndices(r, ranks, padded))
                if (i < positions.Length) pairs[r] += positions[(int)i] + 1;
        return pairs;
    }

    /// <summary>Over every row: the total per rank, and the per-row imbalance (max/min − 1) mean and max.</summary>
    public static JsonObject Summary(IEnumerable<int[]> rows, RingLayout layout, int ranks)
    {
        var total = new long[ranks];
        var imbalance = new List<double>();
        foreach (var row in rows)
        {
            var p = PerRank(row, layout, ranks);
            for (int r = 0; r < ranks; r++) total[r] += p[r];
            imbalance.Add(p.Max() / (double)Math.Max(p.Min(), 1) - 1);
        }
        return new JsonObject
        {
            ["layout"] = layout.ToString().ToLowerInvariant(),
            ["rank_total"] = new JsonArray(total.Select(t => (JsonNode)t).ToArray()),
            ["total_imbalance"] = Math.Round(total.Max() / (double)Math.Max(total.Min(), 1) - 1, 4),
            ["mean_imbalance"] = Math.Round(imbalance.DefaultIfEmpty(0).Average(), 4),
            ["max_imbalance"] = Math.Round(imbalance.DefaultIfEmpty(0).Max(), 4),
            ["rows"] = imbalance.Count,
        };
    }
}
