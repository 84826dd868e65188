using System.Text.Json;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary>
/// The new architectures under sequence parallelism, float64, against one rank: whole training runs of
/// the Qwen3-shaped and the Llama-3.1-scaled builtins in every SP mode, and the logits of a dynamic-NTK
/// model whose frequencies depend on the global length (a rank using its own shard's length would rotate
/// differently from the others).
/// </summary>
public class ArchitectureParityTests
{
    public static TheoryData<string, string, int, int?, string, string> Cases() => new()
    {
        // model, mode, N, ulysses_degree, stage, finetuning_type
        { "builtin:tiny-qwen3", "zigzag-ring", 2, null, "sft", "full" },
        { "builtin:tiny-qwen3", "ring", 3, null, "dpo", "lora" },
        { "builtin:tiny-qwen3", "ulysses", 4, null, "sft", "lora" },
        { "builtin:tiny-qwen3", "hybrid", 4, 2, "dpo", "full" },
        { "builtin:tiny-llama3", "zigzag-ring", 3, null, "dpo", "full" },
        { "builtin:tiny-llama3", "ring", 2, null, "sft", "lora" },
        { "builtin:tiny-llama3", "ulysses", 2, null, "sft", "full" },
        { "builtin:tiny-llama3", "hybrid", 4, 2, "sft", "lora" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Training_SequenceParallelFloat64_MatchesSingleRank(string model, string mode, int n, int? degree, string stage, string finetuning)
    {
        var spec = Spec(model, stage, finetuning, sp: n, mode: mode, ulyssesDegree: degree);
        var data = Rows(spec);

        var one = Run(SingleRank(spec), ScalarType.Float64, data);
        var many = Run(spec, ScalarType.Float64, data);

        AssertSame(one, many, spec.MaxSteps, lossAbs: 1e-9, gradRel: 1e-8, paramAbs: 1e-8);
    }

    [Theory]
    [InlineData("zigzag-ring", 2, null)]
    [InlineData("ring", 3, null)]
    [InlineData("ulysses", 4, null)]
    [InlineData("hybrid", 4, 2)]
    public void Logits_DynamicNtkUnderSequenceParallelism_UseTheGlobalLength(string mode, int n, int? degree)
    {
        var cfg = ModelTestKit.Micro(qwen: false) with
        {
            ModelType = "qwen3", HeadDimOverride = 6, MaxPositionEmbeddings = 16,
            RopeScaling = JsonDocument.Parse("""{"rope_type": "dynamic", "factor": 4.0}""").RootElement.Clone(),
        };
        const int T = 48;                                                                  // 3 × max_position_embeddings
        var plan = SequenceParallelPlan.Create(mode, n, cfg.NumAttentionHeads, cfg.KeyValueHeads, degree);
        double[] reference;
        using (var scope = NewDisposeScope())
        using (var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 9))
        {
            reference = model.call(ModelTestKit.Ids(1, T, cfg.VocabSize, seed: 2), ModelTestKit.Positions(1, T)).data<double>().ToArray();
        }

        var shards = InProcessWorld.Run(n, group =>
        {
            using var scope = NewDisposeScope();
            using var model = new CausalLM(cfg, plan.CreateAttention(group), ScalarType.Float64, initSeed: 9);
            var ids = plan.Shard(ModelTestKit.Ids(1, T, cfg.VocabSize, seed: 2), group.Rank);
            var pos = plan.Shard(ModelTestKit.Positions(1, T), group.Rank);
            return (Positions: pos.data<long>().ToArray(), Logits: model.call(ids, pos).data<double>().ToArray());
        });

        int v = cfg.VocabSize;
        double maxDiff = 0;
        foreach (var (positions, logits) in shards)
            for (int i = 0; i < positions.Length; i++)
                for (int j = 0; j < v; j++)
                    maxDiff = Math.Max(maxDiff, Math.Abs(logits[i * v + j] - reference[positions[i] * v + j]));
        Assert.Equal(T, shards.Sum(s => s.Positions.Length));
        Assert.True(maxDiff < 1e-11, $"max |logits_N − logits_1| = {maxDiff:E2}");
    }
}
