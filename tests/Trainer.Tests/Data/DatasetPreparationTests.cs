using LongSeqService.Shared.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>RunPreparation with datasets by name (dataset_dir/dataset_info.json), eval_dataset and stage pt,
/// on a Qwen3-shaped directory (qwen2-typed until qwen3 is supported) with Qwen3's real tokenizer.</summary>
public sealed class DatasetPreparationTests : IDisposable
{
    private readonly TempFiles _t = new();
    private readonly string _model;

    public DatasetPreparationTests() => _model = HfModelFixture.WriteQwen3Shaped(Path.Combine(_t.Dir, "model"), modelType: "qwen2");

    public void Dispose() => _t.Dispose();

    private JobSpec Spec(string stage, string dataset) => new()
    {
        ModelNameOrPath = _model, Stage = WireNames.Parse<Stage>(stage), Dataset = dataset, DatasetDir = Path.Combine(RepoPaths.Root, "data"),
        Template = stage == "pt" ? null : "qwen", CutoffLen = 256, OutputDir = Path.Combine(_t.Dir, "out"), MaxSteps = 1,
    };

    private PreparedRun Prepare(JobSpec spec) => RunPreparation.Prepare(spec, _t.Dir);

    private static string Refusal(Action prepare) => Assert.Throws<JobSpecException>(prepare).Message;

    [Fact]
    public void Prepare_TwoNames_EachCutToMaxSamplesThenConcatenated()
    {
        var run = Prepare(Spec("sft", "identity,alpaca_en_demo") with { MaxSamples = 10 });

        Assert.Equal(20, run.Train.Count);                    // LLaMA-Factory applies max_samples per dataset
        Assert.All(run.Train.Sft!, s => Assert.InRange(s.LabelCount, 1, s.Length - 1));
    }

    [Fact]
    public void Prepare_DatasetDirRelativeToConfig_DefaultsToData()
    {
        Directory.CreateDirectory(Path.Combine(_t.Dir, "data"));
        File.Copy(RepoPaths.Data("identity.json"), Path.Combine(_t.Dir, "data", "identity.json"));
        File.WriteAllText(Path.Combine(_t.Dir, "data", "dataset_info.json"), """{"mine": {"file_name": "identity.json"}}""");

        var run = Prepare(Spec("sft", "mine") with { DatasetDir = null });

        Assert.Equal(91, run.Train.Count);
    }

    [Fact]
    public void Prepare_Pretrain_C4Demo_EveryTokenLabelledWithinCutoff()
    {
        var run = Prepare(Spec("pt", "c4_demo"));

        Assert.Equal(300, run.Train.Count);
        Assert.All(run.Train.Sft!, s => Assert.Equal(s.InputIds, s.Labels));
        Assert.All(run.Train.Sft!, s => Assert.InRange(s.Length, 2, 256));
        Assert.Contains(run.Train.Sft!, s => s.Length < 256 && s.InputIds[^1] == 151645);   // <|im_end|> ends a whole document
    }

    [Fact]
    public void Prepare_PretrainOnAlpacaFile_TrainsOnInstructionAndInput()
    {
        var run = Prepare(Spec("pt", RepoPaths.Data("identity.json")) with { MaxSamples = 3 });

        Assert.Equal(3, run.Train.Count);
        Assert.All(run.Train.Sft!, s => Assert.Equal(s.InputIds, s.Labels));
    }

    [Fact]
    public void Prepare_EvalDataset_IsTheValidationSet()
    {
        var run = Prepare(Spec("sft", "identity") with { EvalDataset = "alpaca_en_demo", MaxSamples = 5 });

        Assert.Equal(5, run.Train.Count);
        Assert.Equal(5, run.Val.Count);
    }

    [Theory]
    [InlineData("sft", "data/c4_demo.jsonl", null, "stage: c4_demo.jsonl is pre-training text; use stage: pt")]
    [InlineData("sft", "c4_demo", null, "dataset: c4_demo.jsonl: line 1: example 1 has no 'output' (dataset_info.json maps response to 'output')")]
    [InlineData("sft", "dpo_en_demo", null, "stage: dpo_en_demo is preference data (chosen/rejected); use stage: dpo")]
    [InlineData("dpo", "identity", null, "dataset: stage dpo needs preference data (chosen and rejected answers); identity has none")]
    [InlineData("sft", "identity,nope", null, "dataset: 'nope' is not defined in")]
    [InlineData("sft", "identity", "nope.json", "eval_dataset: 'nope.json' file '")]
    public void Prepare_WrongDataset_RefusedNamingTheKey(string stage, string dataset, string? eval, string expected)
    {
        var message = Refusal(() => RunPreparation.Prepare(Spec(stage, dataset) with { EvalDataset = eval }, RepoPaths.Root));

        Assert.Contains(expected, message);
        Assert.False(Directory.Exists(Path.Combine(_t.Dir, "out")));
    }

    [Fact]
    public void Validate_EvalDatasetWithValSize_Refused()
    {
        var errors = JobSpecValidator.Validate(Spec("sft", "identity") with { EvalDataset = "identity", ValSize = 0.1 });

        Assert.Contains(errors, e => e.Field == "val_size" && e.Message.Contains("eval_dataset"));
    }
}
