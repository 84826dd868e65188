namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>360-LLaMA-Factory's 360-example.sh SFT command and the DeepSpeed config it names, with only the
/// paths changed (and the sequence-parallel size, to fit the machine).</summary>
internal static class Example360
{
    /// <summary>examples/deepspeed/ds_z3_offload_config.json of 360-LLaMA-Factory, written into <paramref name="dir"/>.</summary>
    public static string DeepSpeedZ3Offload(string dir)
    {
        var path = Path.Combine(dir, "ds_z3_offload_config.json");
        File.WriteAllText(path, """
            {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
             "gradient_clipping": "auto", "zero_allow_untested_optimizer": true,
             "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16, "hysteresis": 2, "min_loss_scale": 1},
             "bf16": {"enabled": "auto"},
             "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "pin_memory": true}, "offload_param": {"device": "cpu", "pin_memory": true},
               "overlap_comm": true, "contiguous_gradients": true, "sub_group_size": 1e9, "reduce_bucket_size": "auto",
               "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 1e9,
               "stage3_max_reuse_distance": 1e9, "stage3_gather_16bit_weights_on_model_save": true}}
            """);
        return path;
    }

    /// <summary>The SFT command's arguments (model builtin:tiny-qwen2; the published one names a Qwen2.5 checkpoint).</summary>
    public static string[] SftCommand(string dir, string dataset, string outputDir, int sequenceParallelSize) => $"""
        --stage sft
        --do_train
        --model_name_or_path builtin:tiny-qwen2
        --dataset {dataset}
        --template qwen
        --finetuning_type full
        --output_dir {outputDir}
        --cache_dir .cache
        --overwrite_cache
        --overwrite_output_dir
        --cutoff_len 100000
        --per_device_train_batch_size 1
        --gradient_accumulation_steps 1
        --lr_scheduler_type cosine
        --warmup_ratio 0.0
        --logging_steps 1
        --save_strategy steps
        --save_steps 2000
        --learning_rate 5e-6
        --num_train_epochs 4
        --plot_loss
        --save_only_model True
        --deepspeed {DeepSpeedZ3Offload(dir)}
        --bf16 True
        --flash_attn fa2
        --gradient_checkpointing True
        --seed 42
        --sequence_parallel_size {sequenceParallelSize}
        --packing True
        """.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
}
