using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using TorchSharp;
using static LongSeqService.Trainer.Tests.SequenceParallel.ParityRuns;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// The first optimizer step of a one-rank run against the loss written out independently: each example run
/// through a fresh copy of the model on its own (no padding, no collator), log-softmax and gather by hand,
/// and the normalisation the design asks for (SFT: all label tokens of the whole step; DPO: all pairs).
/// The parity tests compare runs of the engine with each other; this anchors the one-rank run itself.
/// </summary>
public sealed class TrainStepReferenceTests : IDisposable
{
    // One intra-op thread on this test thread while the test runs (OpenMP's setting is per thread):
    // spinning workers on 2 shared cores made these tiny forward passes take seconds.
    private readonly int _threads = get_num_threads();
    public TrainStepReferenceTests() => set_num_threads(1);
    public void Dispose() => set_num_threads(_threads);

    private const string Llama = "builtin:tiny-llama";

    /// <summary>Σ −log p(next token) over the labelled positions of one unpadded example (labels shifted by hand).</summary>
    private static Tensor NllSum(CausalLM model, EncodedSequence s)
    {
        int t = s.Length;
        var ids = tensor(s.InputIds.Select(i => (long)i).ToArray(), [1, t], ScalarType.Int64);
        var pos = arange(t, dtype: ScalarType.Int64).unsqueeze(0);
        var logp = model.call(ids, pos).log_softmax(-1)[0];                                    // (T, V)
        var rows = Enumerable.Range(0, t - 1).Where(j => s.Labels[j + 1] != EncodedSequence.IgnoreIndex).ToArray();
        var at = tensor(rows.Select(j => (long)j).ToArray(), ScalarType.Int64);
        var next = tensor(rows.Select(j => (long)s.Labels[j + 1]).ToArray(), ScalarType.Int64);
        return -logp.index(at, next).sum();
    }

    private static int LabelCount(EncodedSequence s) => Enumerable.Range(1, s.Length - 1).Count(j => s.Labels[j] != EncodedSequence.IgnoreIndex);

    private static double[] Gradient(CausalLM model) =>
        model.parameters().Where(p => p.requires_grad).SelectMany(p => p.grad!.flatten().data<double>().ToArray()).ToArray();

    /// <summary>Which examples the run's first step uses (all its micro-batches), from the run's own schedule.</summary>
    private static int[] FirstStepExamples(LongSeqService.Shared.Jobs.JobSpec spec, int count)
    {
        var schedule = new DataSchedule(count, spec.PerDeviceTrainBatchSize, 1, spec.GradientAccumulationSteps, 1, spec.MaxSteps, spec.Seed);
        return Enumerable.Range(0, spec.GradientAccumulationSteps).SelectMany(m => schedule.Examples(0, m, 0)).ToArray();
    }

    [Fact]
    public void SftFirstStep_GradientAccumulation_EqualsMeanNllOverEveryLabelTokenOfTheStep()
    {
        using var scope = NewDisposeScope();
        var spec = Spec(Llama, "sft", "full", gradAcc: 2, steps: 1);
        var data = Rows(spec);
        var result = Run(spec, ScalarType.Float64, data);

        var model = ModelLoader.Load(Llama, ScalarType.Float64, new SdpaAttention()).Model;
        var examples = FirstStepExamples(spec, data.Count);
        Assert.Equal(4, examples.Distinct().Count());
        var rows = examples.Select(i => data.Sft![i]).ToList();
        Assert.True(rows.Select(LabelCount).Distinct().Count() > 1, "rows with equal label counts would hide a per-micro-batch mean");
        var loss = rows.Select(r => NllSum(model, r)).Aggregate((a, b) => a + b) / rows.Sum(LabelCount);
        loss.backward();

        Assert.Equal(loss.item<double>(), result.History[0].Loss, 1e-12);
        Assert.Equal(rows.Sum(LabelCount), result.History[0].LabelTokens);
        Assert.True(LongSeqService.Trainer.Cli.ParityCommand.RelativeDifference(Gradient(model), result.FirstGradient!) < 1e-10);
        model.Dispose();
    }

    [Fact]
    public void DpoFirstStep_ReferenceModel_EqualsMeanSigmoidLossOverPairs()
    {
        using var scope = NewDisposeScope();
        var spec = Spec(Llama, "dpo", "full", gradAcc: 2, steps: 1);
        var data = Rows(spec);
        var result = Run(spec, ScalarType.Float64, data);

        var model = ModelLoader.Load(Llama, ScalarType.Float64, new SdpaAttention()).Model;
        var pairs = FirstStepExamples(spec, data.Count).Select(i => data.Pairs![i]).ToList();
        double beta = spec.PrefBeta;
        Tensor total = zeros(1, ScalarType.Float64);
        foreach (var p in pairs)
        {
            // log p(answer) = −NLL; the reference is the same (untrained) model, held constant.
            var (chosen, rejected) = (-NllSum(model, p.Chosen), -NllSum(model, p.Rejected));
            var margin = (chosen - rejected) - (chosen - rejected).detach();
            total = total - (beta * margin).sigmoid().log();
        }
        var loss = total / pairs.Count;
        loss.backward();

        Assert.Equal(Math.Log(2), loss.item<double>(), 1e-15);                     // policy = reference at step 0
        Assert.Equal(Math.Log(2), result.History[0].Loss, 1e-12);
        Assert.Equal(0.0, result.History[0].Accuracy!.Value);                      // no pair is preferred yet
        Assert.True(LongSeqService.Trainer.Cli.ParityCommand.RelativeDifference(Gradient(model), result.FirstGradient!) < 1e-10);
        model.Dispose();
    }
}
