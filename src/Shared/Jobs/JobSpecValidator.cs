namespace LongSeqService.Shared.Jobs;

/// <summary>
/// Everything about a spec that can be checked before a run starts. Returns every problem, each naming
/// its key and what would work. Model-dependent checks run when the model's shape is known.
/// </summary>
public static class JobSpecValidator
{
    public static readonly string[] LoraTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public static List<SpecError> Validate(JobSpec s, ModelShape? model = null, bool requireOutputDir = false)
    {
        var e = new List<SpecError>();
        void Need(bool ok, string field, string message) { if (!ok) e.Add(new SpecError(field, message)); }
        void OneOf(string? value, string field, string[] allowed)
        {
            if (value != null && !allowed.Contains(value))
                e.Add(new SpecError(field, $"'{value}' is not one of {string.Join(", ", allowed)}" +
                    (JobSpecKeysSuggest(value, allowed) is { } hint ? $"; did you mean '{hint}'?" : "")));
        }

        Need(!string.IsNullOrWhiteSpace(s.ModelNameOrPath), "model_name_or_path", "required: a local Hugging Face directory or builtin:tiny-llama / builtin:tiny-qwen2");
        Need(!string.IsNullOrWhiteSpace(s.Dataset), "dataset", "required: a dataset id or a .json/.jsonl file");
        if (requireOutputDir) Need(!string.IsNullOrWhiteSpace(s.OutputDir), "output_dir", "required: the directory for the model, logs and checkpoints");
        OneOf(s.Stage, "stage", JobSpecKeys.Stages);
        OneOf(s.FinetuningType, "finetuning_type", JobSpecKeys.FinetuningTypes);
        OneOf(s.Template, "template", JobSpecKeys.Templates);
        OneOf(s.Formatting, "formatting", JobSpecKeys.Formattings);
        OneOf(s.SequenceParallelMode, "sequence_parallel_mode", JobSpecKeys.SequenceParallelModes);
        OneOf(s.LrSchedulerType, "lr_scheduler_type", JobSpecKeys.Schedulers);
        OneOf(s.Launch, "launch", JobSpecKeys.Launches);
        OneOf(s.Device, "device", JobSpecKeys.Devices);
        OneOf(s.PrefLoss, "pref_loss", ["sigmoid"]);
        Need(s.Device != "cuda", "device", "this build uses TorchSharp's CPU libraries; use cpu");

        Need(s.CutoffLen >= 1, "cutoff_len", "must be at least 1");
        Need(s.LoraRank >= 1, "lora_rank", "must be at least 1");
        Need(s.LoraAlpha is null or > 0, "lora_alpha", "must be positive");
        Need(s.LoraDropout is >= 0 and < 1, "lora_dropout", "must be in [0, 1)");
        if (s.LoraTarget != "all")
            foreach (var t in s.LoraTarget.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                Need(LoraTargets.Contains(t), "lora_target", $"'{t}' is not a projection; use all or a comma list of {string.Join(", ", LoraTargets)}");
        Need(s.PrefBeta > 0, "pref_beta", "must be positive (0.1 is usual)");
        Need(s.MaxSamples is null or >= 1, "max_samples", "must be at least 1");
        Need(s.ValSize >= 0, "val_size", "must be a fraction in [0, 1) or a count ≥ 1");
        Need(!s.Packing, "packing", "packing is not supported yet; set packing: false (each example is its own sequence)");
        Need(s.SequenceParallelSize >= 1, "sequence_parallel_size", s.SequenceParallelSize == Memory.SequenceParallelAuto.Auto
            ? "auto is chosen by the service at submission (from the hosts' slot memory); here give a number (trainer estimate --sp auto --slot-memory 6G picks one)"
            : "must be at least 1, or auto");
        Need(s.DataParallelSize >= 1, "data_parallel_size", "must be at least 1");
        Need(s.PerDeviceTrainBatchSize >= 1, "per_device_train_batch_size", "must be at least 1");
        Need(s.PerDeviceEvalBatchSize >= 1, "per_device_eval_batch_size", "must be at least 1");
        Need(s.GradientAccumulationSteps >= 1, "gradient_accumulation_steps", "must be at least 1");
        Need(s.LearningRate > 0, "learning_rate", "must be positive (e.g. 1e-4 for LoRA, 1e-5 for full)");
        Need(s.NumTrainEpochs > 0 || s.MaxSteps > 0, "num_train_epochs", "must be positive (or set max_steps)");
        Need(s.MaxSteps == -1 || s.MaxSteps >= 1, "max_steps", "-1 (use num_train_epochs) or at least 1");
        Need(s.WarmupRatio is >= 0 and <= 1, "warmup_ratio", "must be in [0, 1]");
        Need(s.WarmupSteps >= 0, "warmup_steps", "must be ≥ 0");
        Need(s.MaxGradNorm >= 0, "max_grad_norm", "must be ≥ 0 (0 disables clipping)");
        Need(s.WeightDecay >= 0, "weight_decay", "must be ≥ 0");
        Need(s.AdamBeta1 is >= 0 and < 1, "adam_beta1", "must be in [0, 1)");
        Need(s.AdamBeta2 is >= 0 and < 1, "adam_beta2", "must be in [0, 1)");
        Need(s.AdamEpsilon > 0, "adam_epsilon", "must be positive");
        Need(s.LoggingSteps >= 1, "logging_steps", "must be at least 1");
        Need(s.SaveSteps >= 1, "save_steps", "must be at least 1");
        Need(s.SaveTotalLimit is null or >= 1, "save_total_limit", "must be at least 1");
        Need(s.EvalSteps is null or >= 1, "eval_steps", "must be at least 1");
        Need(s.RopeTheta is null or > 0, "rope_theta", "must be positive");
        if (s.SequenceParallelSize >= 1)
            Need(s.CutoffLen >= 2 * s.SequenceParallelSize, "cutoff_len",
                $"must be at least 2 × sequence_parallel_size ({2 * s.SequenceParallelSize}) so every rank holds tokens");

        if (model != null && s.SequenceParallelSize >= 1 && JobSpecKeys.SequenceParallelModes.Contains(s.SequenceParallelMode))
        {
            var sp = SequenceParallelRules.Check(s.SequenceParallelMode, s.SequenceParallelSize, model.NumAttentionHeads, model.NumKeyValueHeads, s.UlyssesDegree);
            if (sp != null) e.Add(new SpecError(sp.StartsWith("ulysses_degree") ? "ulysses_degree" : "sequence_parallel_mode", sp));
            if (s.CutoffLen > model.MaxPositionEmbeddings && s.RopeTheta is null)
                e.Add(new SpecError("cutoff_len", $"{s.CutoffLen} exceeds the model's max_position_embeddings ({model.MaxPositionEmbeddings}); lower it or raise rope_theta"));
        }
        else if (s.UlyssesDegree is not null && s.SequenceParallelMode != "hybrid")
            e.Add(new SpecError("ulysses_degree", "applies only to sequence_parallel_mode 'hybrid'"));
        return e;
    }

    private static string? JobSpecKeysSuggest(string value, string[] allowed)
    {
        var best = allowed.OrderBy(a => EditDistance.Levenshtein(value.ToLowerInvariant(), a)).First();
        return EditDistance.Levenshtein(value.ToLowerInvariant(), best) <= 2 ? best : null;
    }
}
