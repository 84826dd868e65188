using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.SequenceParallel;

/// <summary>
/// A packed row of k examples under SP=N gives the same per-example losses and the same gradients as
/// the k examples trained one by one, unpacked, on one rank (float64).
/// </summary>
public class PackedTrainingParityTests
{
    public static TheoryData<string, int, bool> Cases()
    {
        var data = new TheoryData<string, int, bool>();
        foreach (var mode in new[] { "zigzag-ring", "ring", "ulysses", "hybrid" })
            foreach (var n in new[] { 1, 2, 3, 4 })
                if (mode != "ulysses" || 4 % n == 0) // tiny-llama: 8 query / 4 key-value heads
                    data.Add(mode, n, n % 2 == 0);   // gradient checkpointing in half the cases
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PackedRow_UnderSequenceParallelism_EqualsExamplesOneByOne(string mode, int n, bool checkpointing)
    {
        // Lengths put boundaries inside chunks and on chunk edges; one example is a single label.
        var examples = Examples([9, 5, 2, 12, 7], seed: 3);
        var row = Assert.Single(SequencePacker.Pack(examples, cutoffLen: 35, neat: true));
        var (refLosses, refGrads) = OneByOne(examples);

        var plan = SequenceParallelPlan.Create(mode, n, 8, 4);
        var perRank = InProcessWorld.Run(n, comm =>
        {
            var model = NewModel(plan.CreateAttention(comm), checkpointing);
            var collator = new Collator(padId: 0, plan.SequenceMultiple);
            using var batch = collator.CollatePacked([row]);
            using var docs = plan.Shard(batch.DocumentIds!, comm.Rank);
            using var packed = PackedDocuments.Use(docs);
            var labels = plan.Shard(batch.Labels, comm.Rank);
            var nll = Losses.TokenNll(model.call(plan.Shard(batch.InputIds, comm.Rank), plan.Shard(batch.PositionIds, comm.Rank)), labels); // (1, Tl)
            nll.sum().backward();
            var losses = Enumerable.Range(0, examples.Count).Select(d => nll.masked_select(docs.eq(d)).sum().item<double>()).ToArray();
            return (Losses: losses, Grads: Gradients(model));
        }, TimeSpan.FromSeconds(120));

        for (int d = 0; d < examples.Count; d++)
        {
            var loss = perRank.Sum(r => r.Losses[d]);
            Assert.True(Math.Abs(loss - refLosses[d]) <= 1e-10 * Math.Abs(refLosses[d]), $"example {d}: loss {loss} vs {refLosses[d]}");
        }
        foreach (var (name, expected) in refGrads)
        {
            var actual = perRank.Select(r => r.Grads[name]).Aggregate((a, b) => a + b);
            var error = (actual - expected).abs().max().item<double>() / expected.abs().max().item<double>();
            Assert.True(error <= 1e-10, $"{name}: relative error {error:E3}");
        }
    }

    [Fact]
    public void PackedRow_WithoutDocumentMask_DiffersFromExamplesOneByOne()
    {
        // The test above could not fail if packing never mattered: attention across the boundary does.
        var examples = Examples([6, 10], seed: 4);
        var row = Assert.Single(SequencePacker.Pack(examples, cutoffLen: 16, neat: true));
        var (refLosses, _) = OneByOne(examples);
        var model = NewModel(new LocalAttention(), checkpointing: false);
        using var batch = new Collator(0).CollatePacked([row]);
        var nll = Losses.TokenNll(model.call(batch.InputIds, batch.PositionIds), batch.Labels); // no PackedDocuments: attends across
        var second = nll.masked_select(batch.DocumentIds!.eq(1)).sum().item<double>();
        Assert.True(Math.Abs(second - refLosses[1]) > 1e-6, "attention crossing the boundary should change the second example's loss");
    }

    private static CausalLM NewModel(IAttention attention, bool checkpointing)
    {
        var model = BuiltinModels.Create("builtin:tiny-llama", ScalarType.Float64, attention, seed: 7);
        model.GradientCheckpointing = checkpointing;
        return model;
    }

    /// <summary>Per-example loss sums and the gradient of their total, one example at a time on one rank.</summary>
    private static (double[] Losses, Dictionary<string, Tensor> Grads) OneByOne(IReadOnlyList<EncodedSequence> examples)
    {
        var model = NewModel(new LocalAttention(), checkpointing: false);
        var collator = new Collator(padId: 0, shiftLabels: true);
        var losses = examples.Select(e =>
        {
            using var batch = collator.Collate([e]);
            var loss = Losses.TokenNll(model.call(batch.InputIds, batch.PositionIds), batch.Labels).sum();
            loss.backward(); // gradients accumulate over the examples
            return loss.item<double>();
        }).ToArray();
        return (losses, Gradients(model));
    }

    private static Dictionary<string, Tensor> Gradients(CausalLM model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.detach().clone());

    /// <summary>Random token ids; the first third of each example is a prompt (no labels).</summary>
    private static List<EncodedSequence> Examples(int[] lengths, int seed)
    {
        var rng = new Random(seed);
        return lengths.Select(len =>
        {
            var ids = Enumerable.Range(0, len).Select(_ => rng.Next(1, 1024)).ToArray();
            var labels = ids.Select((id, t) => t < len / 3 ? EncodedSequence.IgnoreIndex : id).ToArray();
            return new EncodedSequence(ids, labels);
        }).ToList();
    }
}
