namespace LongSeqService.Shared.Jobs;

/// <summary>One key of the job spec: its name, group, default (as text), allowed values and meaning.</summary>
public sealed record JobSpecKey(string Name, string Group, string Default, string Description, string[]? Allowed = null);

/// <summary>Every key the job spec accepts, in reading order. Drives unknown-key errors, `--key value`
/// overrides and the README's reference table.</summary>
public static class JobSpecKeys
{
    public static readonly string[] Stages = ["sft", "dpo"];
    public static readonly string[] FinetuningTypes = ["full", "lora"];
    public static readonly string[] Templates = ["default", "chatml", "qwen", "llama3"];
    public static readonly string[] Formattings = ["alpaca", "sharegpt"];
    public static readonly string[] SequenceParallelModes = ["zigzag-ring", "ring", "ulysses", "hybrid"];
    public static readonly string[] Schedulers = ["cosine", "linear", "constant"];
    public static readonly string[] Launches = ["threads", "processes"];
    public static readonly string[] Devices = ["cpu", "cuda"];

    public static readonly IReadOnlyList<JobSpecKey> All =
    [
        new("model_name_or_path", "model", "(required)", "A local Hugging Face directory (config.json, *.safetensors, tokenizer.json) or builtin:tiny-llama / builtin:tiny-qwen2."),
        new("template", "model", "from the model", "Chat template that renders conversations into tokens.", Templates),
        new("rope_theta", "model", "from config.json", "Overrides the RoPE base (raise it to extend the context)."),
        new("stage", "method", "sft", "Training stage.", Stages),
        new("finetuning_type", "method", "full", "Train all weights, or LoRA adapters only.", FinetuningTypes),
        new("lora_rank", "method", "8", "LoRA rank r."),
        new("lora_alpha", "method", "2 × lora_rank", "LoRA scaling numerator (scale = alpha / r)."),
        new("lora_dropout", "method", "0", "Dropout on the LoRA input."),
        new("lora_target", "method", "all", "Comma list of projections to adapt (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all."),
        new("pref_beta", "method", "0.1", "DPO β: strength of the KL anchor to the reference model."),
        new("pref_loss", "method", "sigmoid", "DPO loss.", ["sigmoid"]),
        new("precompute_ref_logps", "method", "false", "Compute the reference model's log-probs once before training, so it is not held in memory."),
        new("dataset", "data", "(required)", "A dataset id (API) or a .json/.jsonl file path, relative to the config file (CLI)."),
        new("formatting", "data", "auto-detected", "Dataset format.", Formattings),
        new("cutoff_len", "data", "2048", "Maximum tokens per sequence after the template; longer examples are truncated, never dropping the whole answer."),
        new("max_samples", "data", "all", "Use only the first N examples."),
        new("val_size", "data", "0", "Fraction (0–1) or count (≥ 1) of examples held out for evaluation loss."),
        new("packing", "data", "false", "Pack several examples into one sequence (not supported yet: refused)."),
        new("sequence_parallel_size", "parallel", "1", "Ranks that split every sequence (ring attention / Ulysses); auto: the smallest that fits a slot's memory (chosen at submission)."),
        new("sequence_parallel_mode", "parallel", "zigzag-ring", "How attention is split across the sequence-parallel group.", SequenceParallelModes),
        new("ulysses_degree", "parallel", "auto", "hybrid only: the Ulysses sub-group size (must divide sequence_parallel_size and the head count)."),
        new("data_parallel_size", "parallel", "1", "Replicas that see different micro-batches; the run needs sequence_parallel_size × data_parallel_size slots."),
        new("launch", "parallel", "threads", "Ranks as threads of one process, or one process per rank (MPI).", Launches),
        new("device", "parallel", "cpu", "Compute device.", Devices),
        new("per_device_train_batch_size", "train", "1", "Sequences per rank per micro-batch."),
        new("per_device_eval_batch_size", "train", "1", "Sequences per rank per evaluation batch."),
        new("gradient_accumulation_steps", "train", "1", "Micro-batches per optimizer step; the loss is normalised by the label tokens of the whole step."),
        new("learning_rate", "train", "5e-5", "Peak learning rate of AdamW."),
        new("num_train_epochs", "train", "3", "Epochs over the training set (ignored when max_steps > 0)."),
        new("max_steps", "train", "-1", "Optimizer steps to run; overrides num_train_epochs when > 0."),
        new("lr_scheduler_type", "train", "cosine", "Learning-rate schedule after warm-up.", Schedulers),
        new("warmup_ratio", "train", "0", "Fraction of the steps spent warming up linearly."),
        new("warmup_steps", "train", "0", "Warm-up steps (wins over warmup_ratio when > 0)."),
        new("max_grad_norm", "train", "1.0", "Clip the global gradient norm to this (0 disables)."),
        new("weight_decay", "train", "0", "AdamW decoupled weight decay."),
        new("adam_beta1", "train", "0.9", "AdamW β1."),
        new("adam_beta2", "train", "0.999", "AdamW β2."),
        new("adam_epsilon", "train", "1e-8", "AdamW ε."),
        new("seed", "train", "42", "Seed for initialisation, shuffling and dropout; same seed, same run."),
        new("bf16", "train", "false", "Train in bfloat16 (fp32 otherwise)."),
        new("gradient_checkpointing", "train", "false", "Recompute each decoder layer in backward instead of storing its activations."),
        new("eval_steps", "train", "at the end", "Evaluate on the validation split every N steps (needs val_size)."),
        new("output_dir", "output", "(required for the CLI)", "Where the model, logs and checkpoints go."),
        new("overwrite_output_dir", "output", "false", "Allow writing into a non-empty output_dir."),
        new("logging_steps", "output", "10", "Log every N optimizer steps (trainer_log.jsonl, progress)."),
        new("save_steps", "output", "500", "Write checkpoint-<step>/ every N optimizer steps."),
        new("save_total_limit", "output", "unlimited", "Keep only the newest N checkpoints."),
        new("resume_from_checkpoint", "output", "none", "A checkpoint-<step> directory (or true: the newest in output_dir) to resume from exactly."),
    ];

    /// <summary>LLaMA-Factory keys that copied configs often carry and that change nothing here: accepted with a warning.</summary>
    public static readonly IReadOnlySet<string> IgnoredLlamaFactoryKeys = new HashSet<string>
    {
        "do_train", "do_eval", "plot_loss", "overwrite_cache", "preprocessing_num_workers", "report_to", "ddp_timeout",
        "trust_remote_code", "dataset_dir", "eval_strategy", "evaluation_strategy", "save_strategy", "dataloader_num_workers",
        "flash_attn", "run_name", "logging_dir", "save_only_model", "fp16",
    };

    private static readonly Dictionary<string, JobSpecKey> ByName = All.ToDictionary(k => k.Name);

    public static bool TryGet(string name, out JobSpecKey key) => ByName.TryGetValue(name, out key!);

    /// <summary>The closest valid key by edit distance, when it is close enough to be a likely typo.</summary>
    public static string? Suggest(string unknown)
    {
        var best = All.Select(k => (k.Name, d: EditDistance.Levenshtein(unknown.ToLowerInvariant(), k.Name)))
                      .OrderBy(x => x.d).First();
        return best.d <= Math.Max(2, unknown.Length / 3) || best.Name.Contains(unknown) || unknown.Contains(best.Name) ? best.Name : null;
    }
}
