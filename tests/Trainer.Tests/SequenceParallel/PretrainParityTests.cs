using LongSeqService.Shared.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Training;
using LongSeqService.Trainer.Tests.Data;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.SequenceParallel;

/// <summary>
/// Stage pt (every token a label, the SFT objective) with SP=N against one rank, float64, in every mode:
/// real c4_demo documents through the built-in tokenizer, each cut to an odd length (never a multiple of 2N).
/// Unlike SFT rows, the first token of every chunk is a label of the previous chunk's last token, so a
/// wrong label shift at chunk borders shows here.
/// </summary>
public class PretrainParityTests
{
    private static readonly int[] Lengths = [61, 47, 53, 67];

    public static TheoryData<string, string, int, string> Cases() => new()
    {
        // model, mode, N, finetuning_type
        { "builtin:tiny-llama", "zigzag-ring", 2, "full" },
        { "builtin:tiny-qwen2", "zigzag-ring", 3, "lora" },
        { "builtin:tiny-qwen2", "ring", 3, "full" },
        { "builtin:tiny-llama", "ulysses", 4, "lora" },
        { "builtin:tiny-qwen2", "hybrid", 4, "full" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pretrain_Float64_SequenceParallelMatchesSingleRank(string model, string mode, int n, string finetuning)
    {
        var spec = Spec(model, "pt", finetuning, sp: n, mode: mode);
        var docs = DatasetLoader.Load(RepoPaths.Data("c4_demo.jsonl"), null).Examples;
        var rows = Lengths.Select((len, i) => new PretrainEncoder(TestTokenizer.Builtin, len).Encode(docs[i])!).ToList();
        Assert.All(rows, r => Assert.Equal(r.InputIds, r.Labels));                  // pt: every token learned
        Assert.Equal(Lengths, rows.Select(r => r.Length));                           // the documents are longer than the cut
        var data = new TrainingData(rows, null);

        var one = Run(SingleRank(spec), ScalarType.Float64, data);
        var many = Run(spec, ScalarType.Float64, data);

        AssertSame(one, many, spec.MaxSteps, lossAbs: 1e-9, gradRel: 1e-8, paramAbs: 1e-8);
        Assert.Equal(Lengths.Sum(l => l - 1), one.History.Sum(h => h.LabelTokens)); // T-1 predictions per document, every document once
    }

    /// <summary>examples/pt_easycontext_tiny_llama.yaml as the CLI prepares it (c4_demo by name, rope_theta raised,
    /// SP 2 zigzag ring), on its 4 longest documents cut to 1,023 tokens (the full 4,096 in float64 needs
    /// ~3 GB for the single-rank reference's attention scores), 2 steps: SP=2 against one rank in float64.</summary>
    [Fact]
    public void EasyContextExample_LongestDocuments_SequenceParallelMatchesSingleRank()
    {
        var example = Path.Combine(RepoPaths.Root, "examples", "pt_easycontext_tiny_llama.yaml");
        var spec = JobSpecParser.FromPairs(JobSpecParser.ReadYaml(File.ReadAllText(example), example)) with
        {
            MaxSteps = 2, GradientAccumulationSteps = 2, PerDeviceTrainBatchSize = 1, CutoffLen = 1023, OutputDir = Path.Combine(Path.GetTempPath(), "lss-unused-" + Guid.NewGuid().ToString("N")),
        };
        var prep = RunPreparation.Prepare(spec, Path.GetDirectoryName(example)!);
        var longest = prep.Train.Sft!.OrderByDescending(s => s.Length).Take(4).ToList();
        Assert.Equal(1e6, spec.RopeTheta);
        Assert.All(longest, s => Assert.Equal(1023, s.Length));                    // cut at cutoff_len: longer documents
        var data = new TrainingData(longest, null);

        var one = Run(SingleRank(spec), ScalarType.Float64, data);
        var many = Run(spec, ScalarType.Float64, data);

        AssertSame(one, many, spec.MaxSteps, lossAbs: 1e-9, gradRel: 1e-8, paramAbs: 1e-8);
    }
}
