using LongSeqService.Shared.Jobs;
using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Tests;

public class JobSpecParserTests
{
    [Fact]
    public void FromPairs_LlamaFactoryYaml_TypesEveryKey()
    {
        var yaml = """
            model_name_or_path: builtin:tiny-llama
            stage: dpo
            finetuning_type: lora
            lora_target: q_proj,v_proj
            dataset: data/dpo.json
            cutoff_len: lots
            """;
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.FromPairs(JobSpecParser.ReadYaml(yaml, "x.yaml")));
        Assert.Equal("cutoff_len", Assert.Single(ex.Errors).Field);

        var spec = JobSpecParser.FromPairs(JobSpecParser.ReadYaml("""
            model_name_or_path: builtin:tiny-llama
            learning_rate: 5.0e-5
            num_train_epochs: 3.0
            cutoff_len: 1e4
            bf16: true
            do_train: true
            resume_from_checkpoint: true
            """, "x.yaml"));
        Assert.Equal(5e-5, spec.LearningRate);
        Assert.Equal(10000, spec.CutoffLen);
        Assert.True(spec.Bf16);
        Assert.Equal("latest", spec.ResumeFromCheckpoint);
        Assert.Equal(1, spec.SequenceParallelSize);          // default
        Assert.Equal(Stage.Sft, spec.Stage);
    }

    [Fact]
    public void FromPairs_UnknownKey_NamesItAndSuggestsClosest()
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.FromPairs([new("cutof_len", "128"), new("sequence_paralel_size", "2")]));
        Assert.Contains(ex.Errors, e => e.Field == "cutof_len" && e.Message.Contains("did you mean 'cutoff_len'"));
        Assert.Contains(ex.Errors, e => e.Field == "sequence_paralel_size" && e.Message.Contains("'sequence_parallel_size'"));
    }

    [Fact]
    public void FromPairs_LaterPairWins_LikeCommandLineOverrides()
    {
        var spec = JobSpecParser.FromPairs([new("cutoff_len", "128"), new("cutoff_len", "256")]);
        Assert.Equal(256, spec.CutoffLen);
    }

    [Fact]
    public void FromPairs_IgnoredLlamaFactoryKey_WarnsExactlyOnce()
    {
        var warnings = new List<string>();
        JobSpecParser.FromPairs([new("plot_loss", "true"), new("cache_dir", ".cache"), new("plot_loss", "false")], warnings);
        Assert.Equal(["cache_dir", "plot_loss"], warnings.Select(w => w.Split(':')[0]).Order());
    }

    [Fact]
    public void FromJson_WrongTypes_ReportEachField()
    {
        var body = JsonNode.Parse("""{"cutoff_len": "long", "bf16": 3, "dataset": ["a", "b"], "learning_rate": 1e-4, "max_steps": 2.5}""")!.AsObject();
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.FromJson(body));
        Assert.Equal(["bf16", "cutoff_len", "dataset", "max_steps"], ex.Errors.Select(e => e.Field).Order().ToArray());
    }

    [Fact]
    public void ToJson_RoundTripsThroughFromJson()
    {
        var spec = new JobSpec { ModelNameOrPath = "builtin:tiny-qwen2", Dataset = "ds_1", SequenceParallelSize = 4, LearningRate = 3e-4,
            Stage = Stage.Dpo, SequenceParallelMode = SequenceParallelMode.ZigzagRing, LrSchedulerType = LrSchedulerType.Linear, ZeroStage = 2 };
        var json = JobSpecParser.ToJson(spec);
        Assert.Equal("dpo", json["stage"]!.GetValue<string>());                      // wire names, not enum member names
        Assert.Equal("zigzag-ring", json["sequence_parallel_mode"]!.GetValue<string>());
        Assert.Equal(spec, JobSpecParser.FromJson(json));
    }

    [Fact]
    public void ReadYaml_ListValue_IsRefusedWithTheKey()
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.ReadYaml("dataset:\n  - a\n  - b\n", "c.yaml"));
        Assert.Equal("dataset", ex.Errors[0].Field);
    }
}
