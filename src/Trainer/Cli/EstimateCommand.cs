using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Memory;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer estimate --model M --seq-len T --sp N …</c>: each rank's predicted peak memory from the model's
/// config.json alone (shape:NAME, builtin:NAME or a local Hugging Face directory; no weights are read),
/// broken down by term (<see cref="MemoryModel"/>). <c>--sp auto --slot-memory 6G</c> prints the smallest N
/// that fits instead.
/// </summary>
public static class EstimateCommand
{
    private static readonly string[] Known =
        ["model", "seq_len", "sp", "dp", "mode", "ulysses_degree", "stage", "finetuning_type", "lora_rank", "lora_target", "precompute_ref_logps",
         "bf16", "gradient_checkpointing", "batch_size", "zero_stage", "offload", "loss_head", "slot_memory", "max_sp", "json"];

    public static int Run(string[] args)
    {
        var cli = CliArgs.Parse(args, new HashSet<string> { "json", "bf16", "gradient_checkpointing", "precompute_ref_logps", "offload" });
        cli.RejectUnknown(Known);
        var model = cli.Require("model", "shape:qwen2.5-7b");
        var dims = ModelDims.Resolve(model, out var error) ?? throw new CliException("--model: " + error);
        var spec = new JobSpec
        {
            ModelNameOrPath = model, CutoffLen = CliArgs.ParseSize(cli.Require("seq_len", "32k")), DataParallelSize = cli.Int("dp", 1),
            SequenceParallelMode = OneOf<SequenceParallelMode>(cli, "mode", "zigzag-ring"),
            UlyssesDegree = cli.Get("ulysses_degree") is { } u ? cli.Int("ulysses_degree", 1) : null,
            Stage = OneOf<Stage>(cli, "stage", "sft"), FinetuningType = OneOf<FinetuningType>(cli, "finetuning_type", "full"),
            LoraRank = cli.Int("lora_rank", 8), LoraTarget = cli.Get("lora_target") ?? "all", PrecomputeRefLogps = cli.Has("precompute_ref_logps"),
            Bf16 = cli.Has("bf16"), GradientCheckpointing = cli.Has("gradient_checkpointing"), PerDeviceTrainBatchSize = cli.Int("batch_size", 1),
        };
        int zero = cli.Int("zero_stage", 0);
        if (zero is < 0 or > 3) throw new CliException($"--zero-stage: {zero} is not 0, 1, 2 or 3");
        var lossHeadName = cli.Get("loss_head") ?? TrainerLossHead.Current.ToString().ToLowerInvariant();
        var lossHead = lossHeadName switch
        {
            "full" => LossHead.Full,
            "chunked" => LossHead.Chunked,
            _ => throw new CliException($"--loss-head: '{WireNames.Shorten(lossHeadName)}' is not one of full, chunked"),
        };
        MemoryRequest Request(int n) => MemoryRequest.FromSpec(spec, n) with { ZeroStage = zero, OffloadOptimizer = cli.Has("offload"), LossHead = lossHead };

        var sp = cli.Get("sp") ?? "1";
        if (sp == "auto")
        {
            long budget = MaxLengthSearch.ParseBytes(cli.Require("slot_memory", "6G"), "slot-memory");
            foreach (var n in SequenceParallelAuto.Candidates(dims, spec, cli.Int("max_sp", 64)))
            {
                var e = MemoryModel.Estimate(dims, Request(n));
                if (e.PeakBytes > budget) continue;
                Print(cli, e, Request(n), $"sequence_parallel_size auto → {n}: {MemoryEstimate.Format(e.PeakBytes)} per rank ≤ {MemoryEstimate.Format(budget)}");
                return 0;
            }
            throw new CliException($"--sp auto: no sequence_parallel_size up to {cli.Int("max_sp", 64)} fits {MemoryEstimate.Format(budget)} per rank; " +
                                   "try --gradient-checkpointing, --bf16, --finetuning-type lora, a larger --max-sp or a shorter --seq-len");
        }
        int size = cli.Int("sp", 1);
        if (SequenceParallelRules.Check(spec.SequenceParallelMode, size, dims.Heads, dims.KvHeads, spec.UlyssesDegree) is { } bad)
            throw new CliException("--sp: " + bad);
        var estimate = MemoryModel.Estimate(dims, Request(size));
        Print(cli, estimate, Request(size), null);
        return 0;
    }

    private static void Print(CliArgs cli, MemoryEstimate e, MemoryRequest r, string? headline)
    {
        if (cli.Has("json"))
        {
            var o = MemoryEstimateJson.ToJson(e, r);
            o["sequence_parallel_size"] = r.SequenceParallelSize;
            Console.WriteLine(o.ToJsonString());
            return;
        }
        if (headline != null) Console.WriteLine(headline);
        Console.WriteLine($"peak per rank: {MemoryEstimate.Format(e.PeakBytes)} ({e.PeakBytes:N0} B) at {e.PeakMoment.Name}; " +
                          $"sp={r.SequenceParallelSize} dp={r.DataParallelSize} {r.Mode.Wire()}, {e.LocalTokens:N0} tokens per rank, loss head {r.LossHead.ToString().ToLowerInvariant()}");
        Console.WriteLine("  resident");
        foreach (var t in e.Resident) Line(t);
        foreach (var m in e.Moments)
        {
            Console.WriteLine($"  {m.Name}: {MemoryEstimate.Format(m.Bytes)}{(m == e.PeakMoment ? "  ← peak" : "")}");
            foreach (var t in m.Terms.Where(t => t.Bytes > 0)) Line(t);
        }
    }

    private static void Line(MemoryTerm t) => Console.WriteLine($"    {t.Name,-20} {MemoryEstimate.Format(t.Bytes),12}  {t.Detail}");

    private static T OneOf<T>(CliArgs cli, string key, string fallback) where T : struct, Enum
    {
        var v = cli.Get(key) ?? fallback;
        return WireNames.TryParse(typeof(T), v, out var value) ? (T)value
            : throw new CliException($"--{key.Replace('_', '-')}: '{WireNames.Shorten(v)}' is not one of {string.Join(", ", WireNames.Names(typeof(T)))}");
    }
}
