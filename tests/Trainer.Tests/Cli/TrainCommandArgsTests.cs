using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>
/// <c>trainer train</c>'s command line as LLaMA-Factory's argparse takes it, at parse level (nothing runs):
/// 360-LLaMA-Factory's 360-example.sh SFT and DPO commands with only the paths changed, bare boolean flags,
/// <c>True</c>/<c>False</c>, <c>--key=value</c>, and a config file under flags.
/// </summary>
public sealed class TrainCommandArgsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("train-args-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string DeepSpeedZ3Offload() => Example360.DeepSpeedZ3Offload(_dir);

    private static string[] Split(string command) => command.Split([' ', '\n', '\\'], StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void Parse_360ExampleSftCommand_AcceptsEveryFlag()
    {
        var (spec, _, warnings) = TrainCommand.Parse(Example360.SftCommand(_dir, RepoPaths.Data("identity.json"), $"{_dir}/sft-test", sequenceParallelSize: 8));
        Assert.Equal((Stage.Sft, FinetuningType.Full, "qwen", 100000, 8), (spec.Stage, spec.FinetuningType, spec.Template, spec.CutoffLen, spec.SequenceParallelSize));
        Assert.Equal((5e-6, 4.0, LrSchedulerType.Cosine, 2000, 1), (spec.LearningRate, spec.NumTrainEpochs, spec.LrSchedulerType, spec.SaveSteps, spec.LoggingSteps));
        Assert.True(spec.Bf16 && spec.GradientCheckpointing && spec.OverwriteOutputDir && spec.Packing);
        Assert.Equal(3, spec.ZeroStage); // ZeRO-3 asked and honoured
        // One warning per ignored key, and one for deepspeed saying what is not honoured (offload).
        Assert.Equal(["cache_dir", "deepspeed", "do_train", "flash_attn", "overwrite_cache", "plot_loss", "save_only_model", "save_strategy"],
            warnings.Select(w => w.Split(':')[0]).Order());
    }

    [Fact]
    public void Parse_360ExampleDpoCommand_AcceptsEveryFlag()
    {
        var (spec, _, warnings) = TrainCommand.Parse(Split($"""
            --stage dpo --do_train --model_name_or_path builtin:tiny-qwen2 --dataset {RepoPaths.Data("dpo_en_demo.json")} --template qwen
            --finetuning_type full --pref_beta 0.1 --pref_loss sigmoid --output_dir {_dir}/debug --cache_dir .cache --overwrite_cache
            --overwrite_output_dir --cutoff_len 32768 --per_device_train_batch_size 1 --gradient_accumulation_steps 4 --lr_scheduler_type cosine
            --warmup_ratio 0.0 --logging_steps 1 --save_steps 2000 --save_strategy steps --learning_rate 1e-6 --num_train_epochs 10 --plot_loss
            --save_only_model True --deepspeed {DeepSpeedZ3Offload()} --flash_attn fa2 --gradient_checkpointing True --bf16 True
            --ddp_timeout 180000000 --seed 42 --sequence_parallel_size 4
            """));
        Assert.Equal((Stage.Dpo, 0.1, PrefLoss.Sigmoid, 32768, 4, 4), (spec.Stage, spec.PrefBeta, spec.PrefLoss, spec.CutoffLen, spec.GradientAccumulationSteps, spec.SequenceParallelSize));
        Assert.True(spec.Bf16 && spec.GradientCheckpointing);
        Assert.Equal(9, warnings.Count); // 8 ignored keys (ddp_timeout among them), deepspeed (no offload)
        Assert.Equal(warnings.Count, warnings.Select(w => w.Split(':')[0]).Distinct().Count());
    }

    [Theory]
    [InlineData("--bf16 --plot_loss", true)]
    [InlineData("--bf16 True", true)]
    [InlineData("--bf16 true", true)]
    [InlineData("--bf16 False", false)]
    [InlineData("--bf16=false", false)]
    [InlineData("--bf16", true)]
    public void Parse_BooleanFlag_BareOrWithValue(string flags, bool bf16)
    {
        var (spec, _, _) = TrainCommand.Parse(["--model_name_or_path", "builtin:tiny-llama", .. flags.Split(' ')]);
        Assert.Equal(bf16, spec.Bf16);
    }

    [Fact]
    public void Parse_KeyEqualsValueAndDashes_AreTheSameKeys()
    {
        var (spec, _, _) = TrainCommand.Parse(["--cutoff-len=512", "--learning_rate=1e-4", "--sequence_parallel_mode", "ulysses"]);
        Assert.Equal((512, 1e-4, SequenceParallelMode.Ulysses), (spec.CutoffLen, spec.LearningRate, spec.SequenceParallelMode));
    }

    [Fact]
    public void Parse_ValueKeyWithoutValue_NamesIt()
    {
        var e = Assert.Throws<CliException>(() => TrainCommand.Parse(["--cutoff_len", "--bf16"]));
        Assert.Contains("--cutoff_len needs a value", e.Message);
    }

    [Fact]
    public void Parse_YamlThenFlags_FlagsWinAndPathsAreRelativeToTheConfig()
    {
        var config = Path.Combine(_dir, "c.yaml");
        File.WriteAllText(config, "model_name_or_path: builtin:tiny-llama\ncutoff_len: 128\ndo_train: true\nresume_from_checkpoint: null\n");
        var (spec, baseDir, warnings) = TrainCommand.Parse([config, "--cutoff_len", "256", "--do_train"]);
        Assert.Equal((256, _dir), (spec.CutoffLen, baseDir));
        Assert.Single(warnings); // do_train, once although given twice
    }

    [Fact]
    public void Parse_JsonRunFile_ReadsTheSpecTheHostWrote()
    {
        var spec = new JobSpec { ModelNameOrPath = "builtin:tiny-qwen2", Dataset = "/d/a.json", Stage = Stage.Dpo, SequenceParallelMode = SequenceParallelMode.Hybrid, UlyssesDegree = 2 };
        var path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, JobSpecParser.ToJson(spec).ToJsonString());
        var (back, _, warnings) = TrainCommand.Parse([path, "--max_steps", "2"]);
        Assert.Equal(spec with { MaxSteps = 2 }, back);
        Assert.Empty(warnings);
    }

    [Fact]
    public void Parse_JsonRunFileWithDuplicateKey_IsRefused()
    {
        var path = Path.Combine(_dir, "dup.json");
        File.WriteAllText(path, """{"cutoff_len": 1, "cutoff_len": 2}""");
        Assert.Throws<JobSpecException>(() => TrainCommand.Parse([path]));
    }
}
