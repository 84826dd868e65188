using System.Text.Json.Serialization;

namespace LongSeqService.Shared.Jobs;

/// <summary>
/// The training job spec: one record for the CLI (YAML) and the API (JSON), with LLaMA-Factory's key
/// names so its users can copy their configs. Every key, its default and its meaning is listed in
/// <see cref="JobSpecKeys"/>; the README's reference table is generated from that list.
/// </summary>
public sealed record JobSpec
{
    // model
    [JsonPropertyName("model_name_or_path")] public string? ModelNameOrPath { get; init; }
    [JsonPropertyName("template")] public string? Template { get; init; }
    [JsonPropertyName("rope_theta")] public double? RopeTheta { get; init; }
    // method
    [JsonPropertyName("stage")] public string Stage { get; init; } = "sft";
    [JsonPropertyName("finetuning_type")] public string FinetuningType { get; init; } = "full";
    [JsonPropertyName("lora_rank")] public int LoraRank { get; init; } = 8;
    [JsonPropertyName("lora_alpha")] public double? LoraAlpha { get; init; }
    [JsonPropertyName("lora_dropout")] public double LoraDropout { get; init; }
    [JsonPropertyName("lora_target")] public string LoraTarget { get; init; } = "all";
    [JsonPropertyName("pref_beta")] public double PrefBeta { get; init; } = 0.1;
    [JsonPropertyName("pref_loss")] public string PrefLoss { get; init; } = "sigmoid";
    [JsonPropertyName("precompute_ref_logps")] public bool PrecomputeRefLogps { get; init; }
    // data
    [JsonPropertyName("dataset")] public string? Dataset { get; init; }
    [JsonPropertyName("eval_dataset")] public string? EvalDataset { get; init; }
    [JsonPropertyName("dataset_dir")] public string? DatasetDir { get; init; }
    [JsonPropertyName("formatting")] public string? Formatting { get; init; }
    [JsonPropertyName("cutoff_len")] public int CutoffLen { get; init; } = 2048;
    [JsonPropertyName("max_samples")] public int? MaxSamples { get; init; }
    [JsonPropertyName("val_size")] public double ValSize { get; init; }
    [JsonPropertyName("packing")] public bool Packing { get; init; }
    // parallel
    [JsonPropertyName("sequence_parallel_size")] public int SequenceParallelSize { get; init; } = 1;
    [JsonPropertyName("sequence_parallel_mode")] public string SequenceParallelMode { get; init; } = "zigzag-ring";
    [JsonPropertyName("ulysses_degree")] public int? UlyssesDegree { get; init; }
    [JsonPropertyName("data_parallel_size")] public int DataParallelSize { get; init; } = 1;
    [JsonPropertyName("launch")] public string Launch { get; init; } = "threads";
    [JsonPropertyName("device")] public string Device { get; init; } = "cpu";
    // train
    [JsonPropertyName("per_device_train_batch_size")] public int PerDeviceTrainBatchSize { get; init; } = 1;
    [JsonPropertyName("per_device_eval_batch_size")] public int PerDeviceEvalBatchSize { get; init; } = 1;
    [JsonPropertyName("gradient_accumulation_steps")] public int GradientAccumulationSteps { get; init; } = 1;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 5e-5;
    [JsonPropertyName("num_train_epochs")] public double NumTrainEpochs { get; init; } = 3.0;
    [JsonPropertyName("max_steps")] public int MaxSteps { get; init; } = -1;
    [JsonPropertyName("lr_scheduler_type")] public string LrSchedulerType { get; init; } = "cosine";
    [JsonPropertyName("warmup_ratio")] public double WarmupRatio { get; init; }
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; }
    [JsonPropertyName("max_grad_norm")] public double MaxGradNorm { get; init; } = 1.0;
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; }
    [JsonPropertyName("adam_beta1")] public double AdamBeta1 { get; init; } = 0.9;
    [JsonPropertyName("adam_beta2")] public double AdamBeta2 { get; init; } = 0.999;
    [JsonPropertyName("adam_epsilon")] public double AdamEpsilon { get; init; } = 1e-8;
    [JsonPropertyName("seed")] public int Seed { get; init; } = 42;
    [JsonPropertyName("bf16")] public bool Bf16 { get; init; }
    [JsonPropertyName("gradient_checkpointing")] public bool GradientCheckpointing { get; init; }
    [JsonPropertyName("eval_steps")] public int? EvalSteps { get; init; }
    // output
    [JsonPropertyName("output_dir")] public string? OutputDir { get; init; }
    [JsonPropertyName("overwrite_output_dir")] public bool OverwriteOutputDir { get; init; }
    [JsonPropertyName("logging_steps")] public int LoggingSteps { get; init; } = 10;
    [JsonPropertyName("save_steps")] public int SaveSteps { get; init; } = 500;
    [JsonPropertyName("save_total_limit")] public int? SaveTotalLimit { get; init; }
    [JsonPropertyName("resume_from_checkpoint")] public string? ResumeFromCheckpoint { get; init; }

    /// <summary>Ranks one run needs: one slot each.</summary>
    [JsonIgnore] public int WorldSize => SequenceParallelSize * DataParallelSize;
    [JsonIgnore] public double EffectiveLoraAlpha => LoraAlpha ?? 2.0 * LoraRank;
}
