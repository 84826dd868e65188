using LongSeqService.Shared.Models;

namespace LongSeqService.Shared.Jobs;

/// <summary>
/// Everything about a spec that can be checked before a run starts. Returns every problem, each naming
/// its key and what would work. The declared bounds and closed sets (<see cref="JobSpecKeys"/>) are checked
/// for every key, so a spec built in code meets the same rules as a parsed one; below them, the rules
/// that tie keys together. Model-dependent checks run when the model's shape is known.
/// </summary>
public static class JobSpecValidator
{
    public static readonly string[] LoraTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public static List<SpecError> Validate(JobSpec s, ModelShape? model = null, bool requireOutputDir = false)
    {
        var e = Declared(s);
        void Need(bool ok, string field, string message) { if (!ok && !e.Any(x => x.Field == field)) e.Add(new SpecError(field, message)); }

        Need(!string.IsNullOrWhiteSpace(s.ModelNameOrPath), "model_name_or_path", "required: a local Hugging Face directory or builtin:tiny-llama / builtin:tiny-qwen2");
        Need(!string.IsNullOrWhiteSpace(s.Dataset), "dataset", "required: a dataset id or a .json/.jsonl file");
        if (requireOutputDir) Need(!string.IsNullOrWhiteSpace(s.OutputDir), "output_dir", "required: the directory for the model, logs and checkpoints");
        Need(s.SequenceParallelSize != Memory.SequenceParallelAuto.Auto, "sequence_parallel_size",
            "auto is chosen by the service at submission (from the hosts' slot memory); here give a number (trainer estimate --sp auto --slot-memory 6G picks one)");
        Need(s.Device != ComputeDevice.Cuda, "device", "this build uses TorchSharp's CPU libraries; use cpu");
        if (s.LoraTarget != "all")
            foreach (var t in s.LoraTarget.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                Need(LoraTargets.Contains(t), "lora_target", $"'{WireNames.Shorten(t)}' is not a projection; use all or a comma list of {string.Join(", ", LoraTargets)}");
        Need(s.ValSize < 1 || s.ValSize == Math.Floor(s.ValSize), "val_size", "must be a fraction in [0, 1) or a whole count ≥ 1");
        Need(s.EvalDataset is null || s.ValSize == 0, "val_size", "cannot be set with eval_dataset (as in LLaMA-Factory); use one of them");
        Need(!s.Packing || s.Stage != Stage.Dpo, "packing", "dpo keeps one preference pair per sequence; set packing: false");
        Need(s.NeatPacking is null || s.Packing, "neat_packing", "only applies with packing: true");
        Need(s.MaxTokensPerBatch is null || s.MaxTokensPerBatch >= s.CutoffLen, "max_tokens_per_batch",
            $"must be at least cutoff_len ({s.CutoffLen}) so that every sequence fits a micro-batch");
        Need(s.NumTrainEpochs > 0 || s.MaxSteps > 0, "num_train_epochs", "must be positive (or set max_steps)");
        Need(s.MaxSteps != 0, "max_steps", "-1 (use num_train_epochs) or at least 1");
        if (s.SequenceParallelSize >= 1)
            Need(s.CutoffLen >= 2 * s.SequenceParallelSize, "cutoff_len",
                $"must be at least 2 × sequence_parallel_size ({2 * s.SequenceParallelSize}) so every rank holds tokens");
        if (s.MpiHosts is { } list)
        {
            var hosts = MpiHosts.Parse(list, out var hostError);
            Need(hostError is null, "mpi_hosts", hostError!);
            Need(s.Launch == Launch.Processes, "mpi_hosts", "needs launch: processes (threads are ranks of one process on one host)");
            if (hostError is null && s.SequenceParallelSize >= 1)
                Need(hosts.Sum(h => h.Slots) == s.WorldSize, "mpi_hosts",
                    $"the slots add up to {hosts.Sum(h => h.Slots)}, the world is sequence_parallel_size × data_parallel_size = {s.WorldSize} ranks; give one slot per rank");
        }

        if (model != null && s.SequenceParallelSize >= 1)
        {
            var sp = SequenceParallelRules.Check(s.SequenceParallelMode, s.SequenceParallelSize, model.NumAttentionHeads, model.NumKeyValueHeads, s.UlyssesDegree);
            if (sp != null) e.Add(new SpecError(sp.StartsWith("ulysses_degree") ? "ulysses_degree" : "sequence_parallel_mode", sp));
            if (s.CutoffLen > model.MaxPositionEmbeddings && s.RopeTheta is null)
                e.Add(new SpecError("cutoff_len", $"{s.CutoffLen} exceeds the model's max_position_embeddings ({model.MaxPositionEmbeddings}); lower it or raise rope_theta"));
            if (ModelArchitectures.SlidingWindowProblem(model.SlidingWindow, s.CutoffLen) is { } window) e.Add(new SpecError("cutoff_len", window));
        }
        else if (s.UlyssesDegree is not null && s.SequenceParallelMode != SequenceParallelMode.Hybrid)
            e.Add(new SpecError("ulysses_degree", "applies only to sequence_parallel_mode 'hybrid'"));
        return e;
    }

    /// <summary>Each key against its declaration: numbers within their bounds, strings within their length
    /// and their catalog, enums defined.</summary>
    private static List<SpecError> Declared(JobSpec s)
    {
        var e = new List<SpecError>();
        foreach (var k in JobSpecKeys.All)
        {
            var v = k.Property.GetValue(s);
            string? problem = v switch
            {
                null => null,
                int i when k.Name == "sequence_parallel_size" && i == Memory.SequenceParallelAuto.Auto => null, // auto: checked below
                int i => JobSpecParser.InRange(k, i),
                double d => !double.IsFinite(d) ? $"must be a finite number ({k.Range})" : JobSpecParser.InRange(k, d),
                string t when t.Length > k.MaxLength => $"longer than {k.MaxLength} characters ({t.Length:N0})",
                string t when k.Allowed != null && !k.Allowed.Contains(t) => JobSpecParser.NotOneOf(t, k.Allowed),
                Enum x when !Enum.IsDefined(x.GetType(), x) => $"{x} is not one of {string.Join(", ", k.Allowed!)}",
                _ => null,
            };
            if (problem != null) e.Add(new SpecError(k.Name, problem));
        }
        return e;
    }
}
