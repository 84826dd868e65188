using LongSeqService.Trainer.Parallel;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer parity</c>: trains K optimizer steps from the same seed and data with SP=1 on one rank
/// and with SP=N (× DP=D, with <c>--zero-stage N</c> the model states partitioned over those ranks), then compares losses (every step), the summed gradient (first step) and the
/// parameters (after the last step). Exit code 0 only within tolerance — a cluster check to run before
/// spending GPU hours.
/// </summary>
public static class ParityCommand
{
    private static readonly string[] Known =
        ["model", "sp", "mode", "seq_len", "dtype", "steps", "stage", "finetuning_type", "batch_size", "gradient_accumulation_steps",
         "dp", "gradient_checkpointing", "ulysses_degree", "seed", "learning_rate", "launch", "packing", "zero_stage", "json"];

    public static int Run(string[] args)
    {
        var cli = CliArgs.Parse(args, new HashSet<string> { "json", "gradient_checkpointing" });
        if (cli.Bool("packing", false)) return RunPacked(cli);
        cli.RejectUnknown(Known);
        var model = cli.Require("model", "builtin:tiny-llama");
        var shape = CheckRuns.Shape(model);
        int sp = cli.Int("sp", 2), dp = cli.Int("dp", 1), steps = cli.Int("steps", 2), batch = cli.Int("batch_size", 2);
        int gradAcc = cli.Int("gradient_accumulation_steps", 1);
        int seqLen = CliArgs.ParseSize(cli.Get("seq_len") ?? "256");
        var dtype = CheckRuns.ParseDtype(cli.Get("dtype") ?? "float64");
        var json = cli.Has("json");

        var spec = new JobSpec
        {
            ModelNameOrPath = model, Dataset = "(synthetic)", Stage = WireNames.Parse<Stage>(cli.Get("stage") ?? "sft"),
            FinetuningType = WireNames.Parse<FinetuningType>(cli.Get("finetuning_type") ?? "full"), LoraTarget = "all",
            SequenceParallelSize = sp, SequenceParallelMode = SequenceParallelPlan.ParseMode(cli.Get("mode") ?? "zigzag-ring"), DataParallelSize = dp,
            UlyssesDegree = cli.Get("ulysses_degree") is { } u ? int.Parse(u) : null,
            PerDeviceTrainBatchSize = batch, GradientAccumulationSteps = gradAcc, MaxSteps = steps, CutoffLen = seqLen,
            LearningRate = double.Parse(cli.Get("learning_rate") ?? "1e-3", System.Globalization.CultureInfo.InvariantCulture),
            LrSchedulerType = LrSchedulerType.Constant, Seed = cli.Int("seed", 42), LoggingSteps = 1,
            GradientCheckpointing = cli.Has("gradient_checkpointing"), Launch = CheckRuns.ParseLaunch(cli.Get("launch")),
            ZeroStage = cli.Int("zero_stage", 0),
        };
        CheckRuns.Validate(spec, shape);
        int count = steps * batch * gradAcc * dp;

        var clock = Stopwatch.StartNew();
        // The reference: one rank holding whole sequences, the same global batch in one replica, in this process.
        var reference = new TrainingRun(CheckRuns.Prepare(spec with { SequenceParallelSize = 1, SequenceParallelMode = SequenceParallelMode.ZigzagRing, UlyssesDegree = null,
            DataParallelSize = 1, PerDeviceTrainBatchSize = batch * dp, Launch = Launch.Threads, ZeroStage = 0 }, shape, dtype, count, seqLen, exactLength: false),
            options: new RunOptions(true, true)).Execute();
        var parallel = new TrainingRun(CheckRuns.Prepare(spec, shape, dtype, count, seqLen, exactLength: false), options: new RunOptions(true, true)).Execute();

        var report = Compare(reference, parallel, dtype);
        report["model"] = model; report["sp"] = sp; report["dp"] = dp; report["mode"] = spec.SequenceParallelMode.Wire();
        report["seq_len"] = seqLen; report["dtype"] = dtype.ToString().ToLowerInvariant(); report["steps"] = steps;
        report["stage"] = spec.Stage.Wire(); report["finetuning_type"] = spec.FinetuningType.Wire(); report["batch_size"] = batch;
        report["gradient_checkpointing"] = spec.GradientCheckpointing; report["launch"] = spec.Launch.Wire(); report["zero_stage"] = spec.ZeroStage; report["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2);
        return Report(report, json, $"parity {model} {spec.Stage.Wire()}/{spec.FinetuningType.Wire()} sp={sp} ({spec.SequenceParallelMode.Wire()}) dp={dp} zero_stage={spec.ZeroStage} T={seqLen} {report["dtype"]}, {steps} steps, ranks as {spec.Launch.Wire()}",
            ("N", "1"));
    }

    /// <summary>Prints the report (one JSON object, or a header and the three differences) and gives the exit code.</summary>
    private static int Report(JsonObject report, bool json, string header, (string Run, string Reference) names)
    {
        bool passed = report["passed"]!.GetValue<bool>();
        if (json) Console.WriteLine(report.ToJsonString());
        else
        {
            var (n, one) = names;
            Console.WriteLine(header);
            Console.WriteLine($"  max |loss_{n} − loss_{one}|   {Show(report["max_loss_abs_diff"])}   (tolerance {report["tolerance"]!["loss_abs"]})");
            Console.WriteLine($"  ‖g_{n} − g_{one}‖ / ‖g_{one}‖ (step 1)   {Show(report["max_grad_rel_diff"])}   (tolerance {report["tolerance"]!["grad_rel"]})");
            Console.WriteLine($"  max |θ_{n} − θ_{one}| (last step)   {Show(report["max_param_abs_diff"])}   (tolerance {report["tolerance"]!["param_abs"]})");
            Console.WriteLine(passed ? "PASS" : "FAIL");
        }
        return passed ? 0 : 1;
    }

    /// <summary>
    /// <c>--packing true</c>: seeded examples of varied lengths (⅛ to ¼ of --seq-len) packed into rows of
    /// --seq-len tokens, trained at SP=N (× DP), against the same examples unpacked — each its own padded
    /// sequence — on one rank. Every optimizer step holds the whole set in both runs (the rows of one
    /// step at SP=N, all examples as one batch at SP=1), so losses, gradients and parameters must agree
    /// exactly: packing changes nothing but the padding.
    /// </summary>
    private static int RunPacked(CliArgs cli)
    {
        cli.RejectUnknown(Known);
        var model = cli.Require("model", "builtin:tiny-llama");
        var shape = CheckRuns.Shape(model);
        int sp = cli.Int("sp", 2), dp = cli.Int("dp", 1), steps = cli.Int("steps", 2), count = cli.Int("batch_size", 8);
        int gradAcc = cli.Int("gradient_accumulation_steps", 1);
        int rowLen = CliArgs.ParseSize(cli.Get("seq_len") ?? "256");
        var dtype = CheckRuns.ParseDtype(cli.Get("dtype") ?? "float64");
        var stage = WireNames.Parse<Stage>(cli.Get("stage") ?? "sft");
        if (stage != Stage.Sft) throw new CliException($"--packing: parity compares packed SFT rows with their examples; --stage {stage.Wire()} is not sft");
        var spec = new JobSpec
        {
            ModelNameOrPath = model, Dataset = "(synthetic)", Stage = stage, FinetuningType = WireNames.Parse<FinetuningType>(cli.Get("finetuning_type") ?? "full"), LoraTarget = "all",
            SequenceParallelSize = sp, SequenceParallelMode = SequenceParallelPlan.ParseMode(cli.Get("mode") ?? "zigzag-ring"), DataParallelSize = dp,
            UlyssesDegree = cli.Get("ulysses_degree") is { } u ? int.Parse(u) : null, GradientAccumulationSteps = gradAcc, MaxSteps = steps,
            CutoffLen = rowLen, Packing = true, NeatPacking = true,
            LearningRate = double.Parse(cli.Get("learning_rate") ?? "1e-3", System.Globalization.CultureInfo.InvariantCulture),
            LrSchedulerType = LrSchedulerType.Constant, Seed = cli.Int("seed", 42), LoggingSteps = 1,
            GradientCheckpointing = cli.Has("gradient_checkpointing"), Launch = CheckRuns.ParseLaunch(cli.Get("launch")),
        };
        CheckRuns.Validate(spec, shape);
        var recipe = new SyntheticRecipe(count, Math.Max(8, rowLen / 4), CheckRuns.Vocab(shape), ExactLength: false);
        int rows = recipe.Generate(spec).Count;
        // One optimizer step holds every row: per-device batch so that dp × gradient_accumulation micro-batches cover them.
        spec = spec with { PerDeviceTrainBatchSize = (rows + dp * gradAcc - 1) / (dp * gradAcc) };

        var clock = Stopwatch.StartNew();
        var unpacked = spec with { Packing = false, NeatPacking = null, SequenceParallelSize = 1, SequenceParallelMode = SequenceParallelMode.ZigzagRing, UlyssesDegree = null,
            DataParallelSize = 1, GradientAccumulationSteps = 1, PerDeviceTrainBatchSize = count, Launch = Launch.Threads };
        var reference = new TrainingRun(recipe.Prepare(unpacked, dtype), options: new RunOptions(true, true)).Execute();
        var packed = new TrainingRun(recipe.Prepare(spec, dtype), options: new RunOptions(true, true)).Execute();

        var report = Compare(reference, packed, dtype);
        report["model"] = model; report["sp"] = sp; report["dp"] = dp; report["mode"] = spec.SequenceParallelMode.Wire(); report["packing"] = true;
        report["examples"] = count; report["rows"] = rows; report["row_len"] = rowLen; report["dtype"] = dtype.ToString().ToLowerInvariant();
        report["steps"] = steps; report["gradient_checkpointing"] = spec.GradientCheckpointing; report["launch"] = spec.Launch.Wire();
        report["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2);
        return Report(report, cli.Has("json"), $"parity (packing) {model} sft: {count} examples packed into {rows} rows of {rowLen} at sp={sp} ({spec.SequenceParallelMode.Wire()}) dp={dp}, vs unpacked at sp=1; {report["dtype"]}, {steps} steps",
            ("packed", "unpacked"));
    }

    /// <summary>The three differences and whether they are within the dtype's tolerance.</summary>
    public static JsonObject Compare(RunResult one, RunResult n, ScalarType dtype)
    {
        double lossDiff = one.History.Zip(n.History, (a, b) => Math.Abs(a.Loss - b.Loss)).DefaultIfEmpty(double.PositiveInfinity).Max();
        if (one.History.Count != n.History.Count) lossDiff = double.PositiveInfinity;
        double gradRel = RelativeDifference(one.FirstGradient!, n.FirstGradient!);
        double paramAbs = one.FinalParameters!.Zip(n.FinalParameters!, (a, b) => Math.Abs(a - b)).Max();
        var (lossTol, gradTol, paramTol) = dtype switch
        {
            ScalarType.Float64 => (1e-9, 1e-8, 1e-8),
            ScalarType.Float32 => (1e-5, 1e-5, 1e-4),
            _ => (2e-2, 5e-2, 5e-2),
        };
        return new JsonObject
        {
            ["losses_sp1"] = new JsonArray(one.History.Select(h => (JsonNode)h.Loss).ToArray()),
            ["losses_spN"] = new JsonArray(n.History.Select(h => (JsonNode)h.Loss).ToArray()),
            ["max_loss_abs_diff"] = Finite(lossDiff),
            ["max_grad_rel_diff"] = Finite(gradRel),
            ["max_param_abs_diff"] = Finite(paramAbs),
            ["tolerance"] = new JsonObject { ["loss_abs"] = lossTol, ["grad_rel"] = gradTol, ["param_abs"] = paramTol },
            ["passed"] = lossDiff <= lossTol && gradRel <= gradTol && paramAbs <= paramTol,
        };
    }

    private static string Show(JsonNode? x) => x is null ? "n/a" : x.GetValue<double>().ToString("0.###e+0");

    /// <summary>JSON has no infinity: a comparison that could not be made is null (and fails).</summary>
    private static JsonNode? Finite(double x) => double.IsFinite(x) ? JsonValue.Create(x) : null;

    public static double RelativeDifference(double[] reference, double[] other)
    {
        if (reference.Length != other.Length) return double.PositiveInfinity;
        double diff = 0, norm = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            diff += (other[i] - reference[i]) * (other[i] - reference[i]);
            norm += reference[i] * reference[i];
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), double.Epsilon);
    }
}
