using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Memory;
using Xunit;

namespace LongSeqService.Shared.Tests;

/// <summary>The memory model's rules, each against what it must follow from (published parameter counts, the
/// layout's arithmetic), never against its own output. Its fit to measured peaks is the trainer's Slow test.</summary>
public class MemoryModelTests
{
    private static ModelDims Shape(string name) => ModelDims.Resolve(name, out var error) ?? throw new InvalidOperationException(error);
    private static MemoryEstimate Estimate(string model, MemoryRequest r) => MemoryModel.Estimate(Shape(model), r);
    private static long Term(MemoryEstimate e, string name) =>
        e.Resident.Concat(e.Moments.SelectMany(m => m.Terms)).First(t => t.Name == name).Bytes;

    [Theory]
    [InlineData("shape:qwen2.5-0.5b", 494_032_768L)]       // Qwen2.5-0.5B: 0.49B (tied embeddings)
    [InlineData("shape:qwen2.5-7b", 7_615_616_512L)]       // Qwen2.5-7B: 7.61B
    [InlineData("shape:llama-3.1-8b", 8_030_261_248L)]     // Llama-3.1-8B: 8.03B
    public void Parameters_PublishedShapes_MatchPublishedCounts(string model, long published)
    {
        Assert.InRange(Shape(model).Parameters, published * 0.999, published * 1.001);
    }

    [Fact]
    public void Estimate_SequenceParallel_DividesPerTokenTermsByN()
    {
        var one = Estimate("shape:qwen2.5-7b", new MemoryRequest { SeqLen = 32768, GradientCheckpointing = true, Bf16 = true, LossHead = LossHead.Full });
        var four = Estimate("shape:qwen2.5-7b", new MemoryRequest { SeqLen = 32768, SequenceParallelSize = 4, GradientCheckpointing = true, Bf16 = true, LossHead = LossHead.Full });

        Assert.Equal(one.LocalTokens, 4 * four.LocalTokens);
        Assert.Equal(Term(one, "activations"), 4 * Term(four, "activations"));
        Assert.Equal(Term(one, "loss_head"), 4 * Term(four, "loss_head"));
        Assert.Equal(Term(one, "weights"), Term(four, "weights"));              // SP alone shards no model state
    }

    [Fact]
    public void Estimate_Dpo_TwoSequencesPerPairAndAReferenceModel()
    {
        var sft = Estimate("shape:qwen2.5-0.5b", new MemoryRequest { SeqLen = 4096 });
        var dpo = Estimate("shape:qwen2.5-0.5b", new MemoryRequest { SeqLen = 4096, Stage = Stage.Dpo });
        var precomputed = Estimate("shape:qwen2.5-0.5b", new MemoryRequest { SeqLen = 4096, Stage = Stage.Dpo, PrecomputeRefLogps = true });

        Assert.Equal(2 * sft.LocalTokens, dpo.LocalTokens);
        Assert.Equal(Term(sft, "weights"), Term(dpo, "reference_model"));
        Assert.DoesNotContain(precomputed.Resident, t => t.Name == "reference_model");
    }

    [Fact]
    public void Estimate_Lora_OnlyAdaptersHaveGradientsAndOptimizerState()
    {
        var dims = Shape("shape:qwen2.5-7b");
        var lora = MemoryModel.Estimate(dims, new MemoryRequest { SeqLen = 4096, FinetuningType = FinetuningType.Lora, LoraRank = 16 });
        // r × (in + out) per projection: q (3584+3584), k and v (3584+512), o (3584+3584), gate/up (3584+18944), down (18944+3584).
        long adapters = 28L * 16 * ((3584 + 3584) * 2 + (3584 + 512) * 2 + (3584 + 18944) * 3);

        Assert.Equal(adapters, dims.LoraParameters(16, JobSpecValidator.LoraTargets));
        Assert.Equal(adapters * 8, Term(lora, "optimizer_state"));
        Assert.Equal(adapters * 4, Term(lora, "gradients"));
    }

    [Fact]
    public void Estimate_Bf16_KeepsFloat32MastersAndMoments()
    {
        var dims = Shape("shape:qwen2.5-0.5b");
        var e = MemoryModel.Estimate(dims, new MemoryRequest { SeqLen = 1024, Bf16 = true });

        Assert.Equal(dims.Parameters * 2, Term(e, "weights"));
        Assert.Equal(dims.Parameters * 12, Term(e, "optimizer_state"));
    }

    [Fact]
    public void Estimate_ZeroStages_ShardModelStateOverTheWorld()
    {
        MemoryEstimate At(int stage) => Estimate("shape:qwen2.5-7b", new MemoryRequest { SeqLen = 8192, SequenceParallelSize = 8, Bf16 = true, ZeroStage = stage });
        var (z0, z1, z2, z3) = (At(0), At(1), At(2), At(3));

        // ÷ 8 ranks, rounded up.
        Assert.InRange(8 * Term(z1, "optimizer_state"), Term(z0, "optimizer_state"), Term(z0, "optimizer_state") + 7);
        Assert.Equal(Term(z0, "weights"), Term(z2, "weights"));
        Assert.InRange(8 * Term(z2, "gradients"), Term(z1, "gradients"), Term(z1, "gradients") + 7);
        Assert.InRange(8 * Term(z3, "weights"), Term(z0, "weights"), Term(z0, "weights") + 7);
        Assert.True(z0.PeakBytes > z1.PeakBytes && z1.PeakBytes > z2.PeakBytes && z2.PeakBytes > z3.PeakBytes);
    }

    /// <summary>ZeRO-3 holds 1/W of the weights, plus the unit it has gathered: one layer's weights and gradient in a
    /// layer's backward, the (V, H) head for the loss, the embedding and its dense gradient at the end of backward —
    /// on a 0.5B model with a 151,936-token vocabulary the head, not a layer, is the largest unit. It always
    /// recomputes, so its activations are the checkpointed ones.</summary>
    [Fact]
    public void Estimate_ZeroStage3_AddsTheGatheredUnitsAndRecomputes()
    {
        var m = Shape("shape:qwen2.5-0.5b");
        var r = new MemoryRequest { SeqLen = 8192, SequenceParallelSize = 4, Bf16 = true, ZeroStage = 3 };
        var z3 = MemoryModel.Estimate(m, r);
        long head = (long)m.Vocab * m.Hidden * 2;

        Assert.Equal(head, Term(z3, "zero3_gathered_head"));
        Assert.Equal(2 * head, Term(z3, "zero3_gathered_embedding"));
        Assert.Equal(2 * m.LayerParameters * 2, Term(z3, "zero3_gather"));
        Assert.Equal(0, Term(MemoryModel.Estimate(m, r with { ZeroStage = 2 }), "zero3_gathered_head"));
        Assert.Equal(head, Term(MemoryModel.Estimate(m, r with { FinetuningType = FinetuningType.Lora }), "zero3_gathered_embedding"));   // a frozen embedding has no gradient
        var checkpointed = MemoryModel.Estimate(m, r with { ZeroStage = 2, GradientCheckpointing = true });
        Assert.Equal(Term(checkpointed, "activations"), Term(z3, "activations"));
    }

    [Fact]
    public void Estimate_ChunkedLossHead_StopsGrowingAtOneChunk()
    {
        var dims = Shape("shape:qwen2.5-0.5b");
        long chunk = LossChunk.Tokens(dims.Vocab);
        MemoryEstimate At(int t, LossHead head) => MemoryModel.Estimate(dims, new MemoryRequest { SeqLen = t, GradientCheckpointing = true, LossHead = head });

        Assert.Equal(Term(At(8192, LossHead.Chunked), "loss_head"), Term(At(65536, LossHead.Chunked), "loss_head"));
        Assert.Equal(2 * chunk * dims.Vocab * 4, Term(At(65536, LossHead.Chunked), "loss_head")); // float32 logits + d(logits) of one chunk
        Assert.Equal(8 * Term(At(8192, LossHead.Full), "loss_head"), Term(At(65536, LossHead.Full), "loss_head"));
    }

    [Fact]
    public void Estimate_Ulysses_RepeatsKvHeadsToTheGroup()
    {
        // Qwen2.5-7B has 4 K/V heads: Ulysses over 8 holds lcm(4, 8) = 8 of them per token, the ring keeps 4.
        var ring = Estimate("shape:qwen2.5-7b", new MemoryRequest { SeqLen = 16384, SequenceParallelSize = 8 });
        var ulysses = Estimate("shape:qwen2.5-7b", new MemoryRequest { SeqLen = 16384, SequenceParallelSize = 8, Mode = SequenceParallelMode.Ulysses });
        long kvGrowth = 2L * 4 * 4 * 128 * 28 * ulysses.LocalTokens;      // 2 tensors (k, v) × 4 more heads × 128 dims × 4 B × 28 layers

        Assert.Equal(kvGrowth, Term(ulysses, "activations") - Term(ring, "activations"));
        Assert.Contains(ulysses.Moments.SelectMany(m => m.Terms), t => t.Name == "all_to_all_buffers");
        Assert.DoesNotContain(ulysses.Moments.SelectMany(m => m.Terms), t => t.Name == "ring_buffers");
    }

    [Fact]
    public void Choose_Auto_IsTheSmallestSizeThatFits()
    {
        var dims = Shape("shape:qwen2.5-0.5b");
        // Long enough that activations, not the fixed optimizer step, decide the peak at every size up to 4.
        var spec = new JobSpec { ModelNameOrPath = "shape:qwen2.5-0.5b", CutoffLen = 262144, GradientCheckpointing = true, Bf16 = true };
        long budget = MemoryModel.Estimate(dims, MemoryRequest.FromSpec(spec, 4)).PeakBytes;

        var choice = SequenceParallelAuto.Choose(dims, spec, budget, maxSize: 8);

        Assert.Equal(4, choice.Size);
        Assert.True(MemoryModel.Estimate(dims, MemoryRequest.FromSpec(spec, 3)).PeakBytes > budget);
        Assert.Null(SequenceParallelAuto.Choose(dims, spec, budget, maxSize: 3).Size);
    }

    [Fact]
    public void Choose_Ulysses_SkipsSizesTheHeadsDontDivide()
    {
        var spec = new JobSpec { ModelNameOrPath = "shape:qwen2.5-0.5b", CutoffLen = 8192, SequenceParallelMode = WireNames.Parse<SequenceParallelMode>("ulysses") };   // 14 heads

        Assert.Equal([1, 2, 7], SequenceParallelAuto.Candidates(Shape("shape:qwen2.5-0.5b"), spec, 8));
    }

    [Fact]
    public void Parser_Auto_IsTheAutoSizeAndRefusedUnresolved()
    {
        var spec = JobSpecParser.FromPairs([new("model_name_or_path", "builtin:tiny-llama"), new("dataset", "d.json"), new("sequence_parallel_size", "auto")]);

        Assert.Equal(SequenceParallelAuto.Auto, spec.SequenceParallelSize);
        Assert.Contains(JobSpecValidator.Validate(spec), e => e.Field == "sequence_parallel_size" && e.Message.Contains("auto"));
    }

    [Fact]
    public void Resolve_UnknownNames_SayWhatExists()
    {
        Assert.Null(ModelDims.Resolve("shape:nope", out var shapeError));
        Assert.Contains("shape:qwen2.5-7b", shapeError);
        Assert.Null(ModelDims.Resolve("/no/such/dir", out var dirError));
        Assert.Contains("config.json", dirError);
    }
}
