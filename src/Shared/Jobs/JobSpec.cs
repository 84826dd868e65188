using System.Text.Json.Serialization;
using LongSeqService.Shared.Data;
using LongSeqService.Shared.Datasets;

namespace LongSeqService.Shared.Jobs;

/// <summary>
/// The training job spec: one record for the CLI (YAML or flags) and the API (JSON), with LLaMA-Factory's
/// key names so its users can copy their configs. Each property IS the declaration of its key — wire
/// name, type, nullability, default, and (<see cref="SpecKeyAttribute"/>) group, meaning, bounds —
/// so adding a key is adding one property here. Values are typed once, by the parser.
/// </summary>
public sealed record JobSpec
{
    // model
    [JsonPropertyName("model_name_or_path"), SpecKey("model", "A local Hugging Face directory (config.json, *.safetensors, tokenizer.json) or builtin:tiny-llama / builtin:tiny-qwen2.", DefaultText = "(required)")]
    public string? ModelNameOrPath { get; init; }
    [JsonPropertyName("template"), SpecKey("model", "Chat template that renders conversations into tokens.", DefaultText = "from the model", Catalog = typeof(ChatTemplate), LlamaFactoryDefault = "must be given")]
    public string? Template { get; init; }
    [JsonPropertyName("rope_theta"), SpecKey("model", "Overrides the RoPE base (raise it to extend the context).", DefaultText = "from config.json", Min = 0, MinExclusive = true, Max = 1e12)]
    public double? RopeTheta { get; init; }
    // method
    [JsonPropertyName("stage"), SpecKey("method", "Training stage: supervised fine-tuning, DPO, or continual pre-training on raw text.")]
    public Stage Stage { get; init; } = Stage.Sft;
    [JsonPropertyName("finetuning_type"), SpecKey("method", "Train all weights, or LoRA adapters only.", LlamaFactoryDefault = "lora")]
    public FinetuningType FinetuningType { get; init; } = FinetuningType.Full;
    [JsonPropertyName("lora_rank"), SpecKey("method", "LoRA rank r.", Min = 1, Max = 4096)]
    public int LoraRank { get; init; } = 8;
    [JsonPropertyName("lora_alpha"), SpecKey("method", "LoRA scaling numerator (scale = alpha / r).", DefaultText = "2 × lora_rank", Min = 0, MinExclusive = true, Max = 1e6)]
    public double? LoraAlpha { get; init; }
    [JsonPropertyName("lora_dropout"), SpecKey("method", "Dropout on the LoRA input.", Min = 0, Max = 0.99)]
    public double LoraDropout { get; init; }
    [JsonPropertyName("lora_target"), SpecKey("method", "Comma list of projections to adapt (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all.", MaxLength = 200)]
    public string LoraTarget { get; init; } = "all";
    [JsonPropertyName("pref_beta"), SpecKey("method", "DPO β: strength of the KL anchor to the reference model.", Min = 0, MinExclusive = true, Max = 100)]
    public double PrefBeta { get; init; } = 0.1;
    [JsonPropertyName("pref_loss"), SpecKey("method", "DPO loss.")]
    public PrefLoss PrefLoss { get; init; } = PrefLoss.Sigmoid;
    [JsonPropertyName("precompute_ref_logps"), SpecKey("method", "Compute the reference model's log-probs once before training, so it is not held in memory.")]
    public bool PrecomputeRefLogps { get; init; }
    // data
    [JsonPropertyName("dataset"), SpecKey("data", "A dataset id (API) or a .json/.jsonl file path, relative to the config file (CLI).", DefaultText = "(required)")]
    public string? Dataset { get; init; }
    [JsonPropertyName("dataset_dir"), SpecKey("data", "CLI: the folder whose dataset_info.json names the datasets (LLaMA-Factory's layout).", DefaultText = "data")]
    public string? DatasetDir { get; init; }
    [JsonPropertyName("eval_dataset"), SpecKey("data", "Datasets for the evaluation loss, named like dataset (instead of a val_size split).", DefaultText = "none")]
    public string? EvalDataset { get; init; }
    [JsonPropertyName("formatting"), SpecKey("data", "Dataset format.", DefaultText = "auto-detected", Catalog = typeof(DatasetFormats))]
    public string? Formatting { get; init; }
    [JsonPropertyName("cutoff_len"), SpecKey("data", "Maximum tokens per sequence after the template; longer examples are truncated, never dropping the whole answer.", Min = 1, Max = 1 << 24)]
    public int CutoffLen { get; init; } = 2048;
    [JsonPropertyName("max_samples"), SpecKey("data", "Use only the first N examples.", DefaultText = "all", Min = 1, Max = int.MaxValue)]
    public int? MaxSamples { get; init; }
    [JsonPropertyName("val_size"), SpecKey("data", "Fraction (0–1) or count (≥ 1) of examples held out for evaluation loss.", Min = 0, Max = 1e9)]
    public double ValSize { get; init; }
    [JsonPropertyName("packing"), SpecKey("data", "Pack several examples into rows of cutoff_len tokens (sft, pt): no padding; exact with neat_packing.", LlamaFactoryDefault = "true for stage pt")]
    public bool Packing { get; init; }
    [JsonPropertyName("neat_packing"), SpecKey("data", "Packed examples never attend to each other and their positions restart; false for pt is LLaMA-Factory's concatenate-and-cut.", DefaultText = "true for sft, false for pt", LlamaFactoryDefault = "false")]
    public bool? NeatPacking { get; init; }
    // parallel
    [JsonPropertyName("sequence_parallel_size"), SpecKey("parallel", "Ranks that split every sequence (ring attention / Ulysses); auto: the smallest that fits a slot's memory (chosen at submission).", Min = 1, Max = 1024)]
    public int SequenceParallelSize { get; init; } = 1;
    [JsonPropertyName("sequence_parallel_mode"), SpecKey("parallel", "How attention is split across the sequence-parallel group.")]
    public SequenceParallelMode SequenceParallelMode { get; init; } = SequenceParallelMode.ZigzagRing;
    [JsonPropertyName("ulysses_degree"), SpecKey("parallel", "hybrid only: the Ulysses sub-group size (must divide sequence_parallel_size and the head count).", DefaultText = "auto", Min = 1, Max = 1024)]
    public int? UlyssesDegree { get; init; }
    [JsonPropertyName("data_parallel_size"), SpecKey("parallel", "Replicas that see different micro-batches; the run needs sequence_parallel_size × data_parallel_size slots.", Min = 1, Max = 1024)]
    public int DataParallelSize { get; init; } = 1;
    [JsonPropertyName("zero_stage"), SpecKey("parallel", "ZeRO: 0 replicates weights, gradients and AdamW states on every rank; 1, 2 and 3 partition the optimizer states, then the gradients, then the weights over all ranks. A `deepspeed` config file sets it too.", Min = 0, Max = 3)]
    public int ZeroStage { get; init; }
    [JsonPropertyName("launch"), SpecKey("parallel", "Ranks as threads of one process, or one process per rank (MPI).")]
    public Launch Launch { get; init; } = Launch.Threads;
    [JsonPropertyName("mpi_hosts"), SpecKey("parallel", "launch: processes across hosts: HOST:SLOTS,… in rank order (Hydra's -hosts; ranks fill each host in turn, so SP groups stay on as few hosts as possible). The first host launches mpiexec and holds output_dir; the slots add up to the world size.", DefaultText = "this host only", MaxLength = 4096, ServiceOwned = true)]
    public string? MpiHosts { get; init; }
    [JsonPropertyName("device"), SpecKey("parallel", "Compute device.")]
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;
    // train
    [JsonPropertyName("per_device_train_batch_size"), SpecKey("train", "Sequences per rank per micro-batch.", Min = 1, Max = 65536)]
    public int PerDeviceTrainBatchSize { get; init; } = 1;
    [JsonPropertyName("max_tokens_per_batch"), SpecKey("train", "Fill training micro-batches by padded tokens (rows of similar length) instead of per_device_train_batch_size rows; at least cutoff_len.", DefaultText = "off", Min = 1, Max = int.MaxValue)]
    public int? MaxTokensPerBatch { get; init; }
    [JsonPropertyName("per_device_eval_batch_size"), SpecKey("train", "Sequences per rank per evaluation batch.", Min = 1, Max = 65536)]
    public int PerDeviceEvalBatchSize { get; init; } = 1;
    [JsonPropertyName("gradient_accumulation_steps"), SpecKey("train", "Micro-batches per optimizer step; the loss is normalised by the label tokens of the whole step.", Min = 1, Max = 1e6)]
    public int GradientAccumulationSteps { get; init; } = 1;
    [JsonPropertyName("learning_rate"), SpecKey("train", "Peak learning rate of AdamW.", Min = 0, MinExclusive = true, Max = 1)]
    public double LearningRate { get; init; } = 5e-5;
    [JsonPropertyName("num_train_epochs"), SpecKey("train", "Epochs over the training set (ignored when max_steps > 0).", Min = 0, Max = 1e6)]
    public double NumTrainEpochs { get; init; } = 3.0;
    [JsonPropertyName("max_steps"), SpecKey("train", "Optimizer steps to run; overrides num_train_epochs when > 0.", Min = -1, Max = 1e9)]
    public int MaxSteps { get; init; } = -1;
    [JsonPropertyName("lr_scheduler_type"), SpecKey("train", "Learning-rate schedule after warm-up.", LlamaFactoryDefault = "linear (Hugging Face's default; its examples set cosine)")]
    public LrSchedulerType LrSchedulerType { get; init; } = LrSchedulerType.Cosine;
    [JsonPropertyName("warmup_ratio"), SpecKey("train", "Fraction of the steps spent warming up linearly.", Min = 0, Max = 1)]
    public double WarmupRatio { get; init; }
    [JsonPropertyName("warmup_steps"), SpecKey("train", "Warm-up steps (wins over warmup_ratio when > 0).", Min = 0, Max = 1e9)]
    public int WarmupSteps { get; init; }
    [JsonPropertyName("max_grad_norm"), SpecKey("train", "Clip the global gradient norm to this (0 disables).", Min = 0, Max = 1e6)]
    public double MaxGradNorm { get; init; } = 1.0;
    [JsonPropertyName("weight_decay"), SpecKey("train", "AdamW decoupled weight decay.", Min = 0, Max = 10)]
    public double WeightDecay { get; init; }
    [JsonPropertyName("adam_beta1"), SpecKey("train", "AdamW β1.", Min = 0, Max = 0.9999999)]
    public double AdamBeta1 { get; init; } = 0.9;
    [JsonPropertyName("adam_beta2"), SpecKey("train", "AdamW β2.", Min = 0, Max = 0.9999999)]
    public double AdamBeta2 { get; init; } = 0.999;
    [JsonPropertyName("adam_epsilon"), SpecKey("train", "AdamW ε.", Min = 0, MinExclusive = true, Max = 1)]
    public double AdamEpsilon { get; init; } = 1e-8;
    [JsonPropertyName("seed"), SpecKey("train", "Seed for initialisation, shuffling and dropout; same seed, same run.", Min = 0, Max = int.MaxValue)]
    public int Seed { get; init; } = 42;
    [JsonPropertyName("bf16"), SpecKey("train", "Train in bfloat16 (fp32 otherwise).")]
    public bool Bf16 { get; init; }
    [JsonPropertyName("gradient_checkpointing"), SpecKey("train", "Recompute each decoder layer in backward instead of storing its activations.",
        LlamaFactoryDefault = "on (it checkpoints unless disable_gradient_checkpointing)")]
    public bool GradientCheckpointing { get; init; }
    [JsonPropertyName("loss_chunk_tokens"), SpecKey("train", "Tokens per chunk of the fused LM head + loss (the (T, V) logits are never held whole).", DefaultText = "128 MiB of float32 logits", Min = 16, Max = 1 << 24)]
    public int? LossChunkTokens { get; init; }
    [JsonPropertyName("eval_steps"), SpecKey("train", "Evaluate on the validation split every N steps (needs val_size).", DefaultText = "at the end", Min = 1, Max = 1e9)]
    public int? EvalSteps { get; init; }
    // output
    [JsonPropertyName("output_dir"), SpecKey("output", "Where the model, logs and checkpoints go.", DefaultText = "(required for the CLI)", ServiceOwned = true)]
    public string? OutputDir { get; init; }
    [JsonPropertyName("overwrite_output_dir"), SpecKey("output", "Allow writing into a non-empty output_dir.", ServiceOwned = true)]
    public bool OverwriteOutputDir { get; init; }
    [JsonPropertyName("logging_steps"), SpecKey("output", "Log every N optimizer steps (trainer_log.jsonl, progress).", Min = 1, Max = 1e9)]
    public int LoggingSteps { get; init; } = 10;
    [JsonPropertyName("save_steps"), SpecKey("output", "Write checkpoint-<step>/ every N optimizer steps.", Min = 1, Max = 1e9)]
    public int SaveSteps { get; init; } = 500;
    [JsonPropertyName("save_total_limit"), SpecKey("output", "Keep only the newest N checkpoints.", DefaultText = "unlimited", Min = 1, Max = 1e6)]
    public int? SaveTotalLimit { get; init; }
    [JsonPropertyName("resume_from_checkpoint"), SpecKey("output", "A checkpoint-<step> directory (or true: the newest in output_dir) to resume from exactly.", DefaultText = "none", ServiceOwned = true)]
    public string? ResumeFromCheckpoint { get; init; }

    /// <summary>Ranks one run needs: one slot each.</summary>
    [JsonIgnore] public int WorldSize => SequenceParallelSize * DataParallelSize;
    [JsonIgnore] public double EffectiveLoraAlpha => LoraAlpha ?? 2.0 * LoraRank;
}
