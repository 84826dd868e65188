using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// ZeRO stages 1, 2 and 3 against stage 0 on the same SP × DP world (threads), two optimizer steps with
/// clipping, weight decay and gradient checkpointing on. The summed gradient is the same bits in every
/// stage (the reduce-scatter adds in the all-reduce's rank order); stage 1's parameters are stage 0's bits
/// (same gradients, same norm, the same AdamW arithmetic per element); stage 2's norm groups the squared
/// sums by partition, so its parameters agree to float64 rounding (≤ 1e-12 relative).
/// </summary>
public class ZeroStageTests
{
    private const string Llama = "builtin:tiny-llama";
    private const string Qwen = "builtin:tiny-qwen2";

    public static TheoryData<string, string, string, int, int> Cases() => new()
    {
        // model, stage, finetuning_type, sp, dp
        { Llama, "sft", "full", 2, 1 },
        { Qwen, "sft", "lora", 3, 1 },            // 3 partitions of a count that 3 does not divide
        { Llama, "dpo", "full", 2, 1 },           // the reference model in memory
        { Llama, "dpo", "lora", 2, 2 },           // SP × DP: 4 partitions
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ZeroStages1And2_Float64_MatchStage0(string model, string stage, string finetuning, int sp, int dp)
    {
        var spec = Spec(model, stage, finetuning, sp: sp, dp: dp);
        var data = Rows(spec);

        var zero = Run(spec, ScalarType.Float64, data);
        var one = Run(spec with { ZeroStage = 1 }, ScalarType.Float64, data);
        var two = Run(spec with { ZeroStage = 2 }, ScalarType.Float64, data);

        AssertSame(zero, one, spec.MaxSteps, lossAbs: 0, gradRel: 0, paramAbs: 0);
        Assert.True(zero.FinalParameters!.AsSpan().SequenceEqual(one.FinalParameters!), "stage 1: parameters are not stage 0's bits");
        Assert.True(zero.FirstGradient!.AsSpan().SequenceEqual(two.FirstGradient!), "stage 2: the reduce-scattered gradient is not stage 0's bits");
        double rel = MaxRelativeDifference(zero.FinalParameters!, two.FinalParameters!);
        Assert.True(rel <= 1e-12, $"stage 2: max |θ₂ − θ₀| / max |θ₀| = {rel:E3}");
        Assert.Equal(zero.History.Select(h => h.GradNorm), two.History.Select(h => h.GradNorm), (a, b) => Math.Abs(a - b) <= 1e-14 * a);
    }

    /// <summary>
    /// Stage 3 against stage 0: the weights gathered unit by unit (forward, and again in the backward
    /// recomputation), each unit's gradient reduce-scattered as its backward ends. Per element the gradient
    /// sums run in stage 0's rank order, so an untied model's summed gradient is stage 0's bits; a tied head
    /// (tiny-qwen2) sums its two uses per rank in stage 0 and per use over the ranks here, so it agrees to
    /// rounding. The parameters agree to float64 rounding (the norm is stage 2's grouping). With and without
    /// gradient checkpointing (stage 3 recomputes either way).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void ZeroStage3_Float64_MatchesStage0(string model, string stage, string finetuning, int sp, int dp)
    {
        foreach (bool checkpointing in new[] { true, false })
        {
            var spec = Spec(model, stage, finetuning, sp: sp, dp: dp, checkpointing: checkpointing);
            var data = Rows(spec);

            var zero = Run(spec, ScalarType.Float64, data);
            var three = Run(spec with { ZeroStage = 3 }, ScalarType.Float64, data);

            AssertSame(zero, three, spec.MaxSteps, lossAbs: 1e-12, gradRel: 1e-12, paramAbs: 1e-10);
            if (model == Llama)
                Assert.True(zero.FirstGradient!.AsSpan().SequenceEqual(three.FirstGradient!), "stage 3: the reduce-scattered gradient is not stage 0's bits");
            double rel = MaxRelativeDifference(zero.FinalParameters!, three.FinalParameters!);
            Assert.True(rel <= 1e-12, $"stage 3 (checkpointing {checkpointing}): max |θ₃ − θ₀| / max |θ₀| = {rel:E3}");
        }
    }

    /// <summary>Stage 3's weight gathers run over the whole world, so every replica must take part in each: at an
    /// epoch's short tail (10 examples, micro-batches of 2 × 2: the last has nothing for replica 1) the idle
    /// replica runs another's examples with zero gradients and no figures, and evaluation runs as many batches
    /// on every replica (3 held-out rows, batches of 1 over 2 replicas). The run equals stage 0's.</summary>
    [Fact]
    public void ZeroStage3_EpochTailAndEvaluation_EveryReplicaTakesPartAndTheRunEqualsStage0()
    {
        using var dirs = new RunDirs();
        JobSpec SpecFor(int stage) => RunDirs.Sft(dirs.Path($"stage{stage}")) with
        {
            ZeroStage = stage, DataParallelSize = 2, MaxSamples = 13, ValSize = 3, PerDeviceEvalBatchSize = 1, EvalSteps = 2,
            GradientAccumulationSteps = 3, MaxSteps = 2, SaveSteps = 100,
        };
        var zero = RunDirs.Train(SpecFor(0));
        var three = RunDirs.Train(SpecFor(3));

        Assert.Equal(zero.History.Select(h => h.Loss), three.History.Select(h => h.Loss), (a, b) => Math.Abs(a - b) <= 1e-6 * Math.Abs(a));
        Assert.Equal(zero.History.Select(h => h.LabelTokens), three.History.Select(h => h.LabelTokens));
        var evals = (string dir) => RunDirs.Log(dir).Where(r => r["eval_loss"] is not null).Select(r => r["eval_loss"]!.GetValue<double>()).ToArray();
        Assert.NotEmpty(evals(dirs.Path("stage0")));
        Assert.Equal(evals(dirs.Path("stage0")), evals(dirs.Path("stage3")), (a, b) => Math.Abs(a - b) <= 1e-6 * Math.Abs(a));
        double rel = MaxRelativeDifference(zero.FinalParameters!, three.FinalParameters!);
        Assert.True(rel <= 1e-6, $"max |θ₃ − θ₀| / max |θ₀| = {rel:E3}");
    }

    /// <summary>bf16 weights with fp32 masters (the masters are partitioned) and float32.</summary>
    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32)]
    public void ZeroStages_LowPrecision_SameBitsAsStage0(ScalarType dtype)
    {
        var spec = Spec(Llama, "sft", "full", sp: 2, dp: 2) with { Bf16 = dtype == ScalarType.BFloat16 };
        var data = Rows(spec);

        var zero = Run(spec, dtype, data);
        var one = Run(spec with { ZeroStage = 1 }, dtype, data);
        var two = Run(spec with { ZeroStage = 2 }, dtype, data);
        var three = Run(spec with { ZeroStage = 3 }, dtype, data);

        Assert.True(zero.FinalParameters!.AsSpan().SequenceEqual(one.FinalParameters!), "stage 1: parameters are not stage 0's bits");
        Assert.True(zero.FirstGradient!.AsSpan().SequenceEqual(two.FirstGradient!), "stage 2: the reduce-scattered gradient is not stage 0's bits");
        Assert.True(zero.FirstGradient!.AsSpan().SequenceEqual(three.FirstGradient!), "stage 3: the gradient from gathered, recomputed units is not stage 0's bits");
        Assert.Equal(zero.History.Select(h => h.Loss), two.History.Select(h => h.Loss));    // step 2's forward ran on the same weights
        Assert.Equal(zero.History.Select(h => h.Loss), three.History.Select(h => h.Loss));
        Assert.NotEqual(zero.History[0].Loss, zero.History[^1].Loss);
    }

    /// <summary>What each rank holds, measured from its tensors: stage 0 everything (16 bytes a parameter in fp32:
    /// weights, gradients, two moments), stage 1 the moments of 1/W of the parameters, stage 2 also 1/W of the
    /// gradients, stage 3 also 1/W of the weights (16·P/W; its parameters hold nothing between units); bf16 adds
    /// an fp32 master per partitioned parameter (2 + 2 + 12/W bytes, stage 1).</summary>
    [Theory]
    [InlineData(ScalarType.Float32, 0, 16.0, 0.0)]
    [InlineData(ScalarType.Float32, 1, 8.0, 8.0)]
    [InlineData(ScalarType.Float32, 2, 4.0, 12.0)]
    [InlineData(ScalarType.BFloat16, 1, 4.0, 12.0)]
    [InlineData(ScalarType.BFloat16, 2, 2.0, 14.0)]
    [InlineData(ScalarType.Float32, 3, 0.0, 16.0)]          // the weights partitioned too: nothing replicated
    [InlineData(ScalarType.BFloat16, 3, 0.0, 16.0)]         // 2 (slice) + 2 (gradient) + 12 (moments, fp32 master)
    public void ModelStateBytes_FourRanks_ReplicatedPlusPartitionedShare(ScalarType dtype, int stage, double replicatedPerParam, double partitionedPerParam)
    {
        var spec = Spec(Llama, "sft", "full", sp: 2, dp: 2) with { ZeroStage = stage, Bf16 = dtype == ScalarType.BFloat16, MaxSteps = 1 };
        var result = Run(spec, dtype, Rows(spec));
        long p = result.FinalParameters!.Length;
        const int w = 4;

        Assert.Equal(w, result.RankModelStateBytes.Length);
        double expected = replicatedPerParam * p + partitionedPerParam * p / w;
        foreach (var rank in result.RankModelStateBytes)
            Assert.True(Math.Abs(rank.Sum() - expected) <= 0.05 * expected, $"rank holds {rank.Sum()} bytes (weights, gradients, optimizer: {string.Join(", ", rank)}), expected {expected:F0}");
        if (stage > 0) Assert.True(result.RankModelStateBytes.Max(r => r[2]) - result.RankModelStateBytes.Min(r => r[2]) <= 16, "partitions are not balanced");
    }

    internal static double MaxRelativeDifference(double[] reference, double[] other)
    {
        Assert.Equal(reference.Length, other.Length);
        double scale = reference.Max(Math.Abs), diff = 0;
        for (int i = 0; i < reference.Length; i++) diff = Math.Max(diff, Math.Abs(reference[i] - other[i]));
        return diff / scale;
    }
}
