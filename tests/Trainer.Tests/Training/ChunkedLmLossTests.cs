using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// The fused, chunked LM head + loss against the unfused reference (whole logits, <see cref="Losses.TokenNll"/>):
/// per-token losses and the gradient of every parameter, tied and untied heads, chunk sizes that don't divide
/// the labelled tokens, ignored labels, a frozen head (LoRA) and bf16.
/// </summary>
public class ChunkedLmLossTests
{
    /// <summary>(B, T) = (2, 11), about a third of the labels ignored; 15 labelled tokens.</summary>
    private static Tensor Labels(long vocab)
    {
        using var g = new Generator(31, CPU);
        var labels = randint(0, vocab, [2, 11], dtype: ScalarType.Int64, generator: g);
        var ignored = rand([2, 11], dtype: ScalarType.Float64, generator: g) < 0.35;
        using Scalar ignore = Losses.IgnoreIndex;
        return labels.masked_fill(ignored, ignore);
    }

    private static double RelDiff(Tensor a, Tensor b) =>
        (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).norm().item<double>() / Math.Max(b.to(ScalarType.Float64).norm().item<double>(), 1e-300);

    /// <summary>Per-token NLL weighted by fixed random numbers (so the upstream gradient is not all ones), and every gradient.</summary>
    private static (Tensor Nll, Dictionary<string, Tensor> Grads) Run(CausalLM model, Tensor ids, Tensor labels, int? chunk)
    {
        model.zero_grad();
        var hidden = model.Hidden(ids, Positions(2, 11));
        var nll = chunk is { } c ? ChunkedLmLoss.TokenNll(hidden, model.HeadWeight, labels, c) : Losses.TokenNll(model.Logits(hidden), labels);
        using var g = new Generator(5, CPU);
        var w = rand(nll.shape, dtype: ScalarType.Float64, generator: g).to(nll.dtype);
        (nll * w).sum().backward();
        var grads = model.named_parameters().Where(p => p.parameter.requires_grad && p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        return (nll.detach(), grads);
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(true, 4)]
    [InlineData(false, 7)]
    [InlineData(false, 15)]
    [InlineData(true, 1000)]
    public void TokenNll_Float64_LossAndEveryGradientMatchUnfused(bool tied, int chunk)
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: tied);                                                       // the qwen micro config ties its head
        var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        Perturb(model, 4);
        var (ids, labels) = (Ids(2, 11, cfg.VocabSize, 6), Labels(cfg.VocabSize));

        var (refNll, refGrads) = Run(model, ids, labels, chunk: null);
        var (nll, grads) = Run(model, ids, labels, chunk);

        Assert.Equal(ScalarType.Float64, nll.dtype);
        Assert.True(RelDiff(nll, refNll) <= 1e-12, $"nll {RelDiff(nll, refNll):E2}");
        using Scalar ignore = Losses.IgnoreIndex;
        Assert.Equal(0, nll.masked_select(labels.eq(ignore)).abs().sum().item<double>());
        Assert.Equal(model.parameters().Count(), refGrads.Count);
        Assert.Equal(refGrads.Keys.Order(), grads.Keys.Order());
        foreach (var (name, g) in refGrads)
            Assert.True(RelDiff(grads[name], g) <= 1e-10, $"{name}: {RelDiff(grads[name], g):E2}");
        var head = tied ? "model.embed_tokens.weight" : "lm_head.weight";
        Assert.True(refGrads[head].abs().sum().item<double>() > 0);
    }

    [Fact]
    public void TokenNll_LoraFrozenHead_AdapterGradientsMatchAndHeadHasNone()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: false);
        var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        model.ApplyLora(new LoraSettings(2, 4, 0, LoraSettings.AllLinear, Seed: 5));
        using (no_grad()) foreach (var (name, p) in model.named_parameters()) if (name.Contains("lora_B")) p.normal_(0, 0.1);
        var (ids, labels) = (Ids(2, 11, cfg.VocabSize, 6), Labels(cfg.VocabSize));

        var (refNll, refGrads) = Run(model, ids, labels, chunk: null);
        var (nll, grads) = Run(model, ids, labels, chunk: 3);

        Assert.False(model.HeadWeight.requires_grad);
        Assert.Null(model.HeadWeight.grad);
        Assert.True(RelDiff(nll, refNll) <= 1e-12);
        Assert.NotEmpty(refGrads);
        Assert.All(refGrads.Keys, n => Assert.Contains("lora_", n));
        foreach (var (name, g) in refGrads)
            Assert.True(RelDiff(grads[name], g) <= 1e-10, $"{name}: {RelDiff(grads[name], g):E2}");
    }

    [Fact]
    public void TokenNll_NoGrad_SameValuesWithoutAGraph()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: true);
        var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        var (ids, labels) = (Ids(2, 11, cfg.VocabSize, 6), Labels(cfg.VocabSize));
        using var noGrad = no_grad();
        var hidden = model.Hidden(ids, Positions(2, 11));

        var nll = ChunkedLmLoss.TokenNll(hidden, model.HeadWeight, labels, 4);

        Assert.False(nll.requires_grad);
        Assert.True(RelDiff(nll, Losses.TokenNll(model.Logits(hidden), labels)) <= 1e-12);
    }

    /// <summary>bf16 model: the statistics are float32, so the fused loss is as close to a float64 evaluation of the
    /// same bf16 logits as the unfused float32 one, and the gradients agree with the unfused ones to bf16 precision.</summary>
    [Fact]
    public void TokenNll_BFloat16_Float32StatisticsAndGradientsWithinBf16Tolerance()
    {
        using var scope = NewDisposeScope();
        var cfg = Micro(qwen: false) with { VocabSize = 300 };
        var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.BFloat16, initSeed: 3);
        var (ids, labels) = (Ids(2, 11, cfg.VocabSize, 6), Labels(cfg.VocabSize));

        var (refNll, refGrads) = Run(model, ids, labels, chunk: null);
        var (nll, grads) = Run(model, ids, labels, chunk: 4);

        Assert.Equal(ScalarType.Float32, nll.dtype);
        using (no_grad())
        {
            var hidden = model.Hidden(ids, Positions(2, 11));
            var exact = Losses.TokenNll(model.Logits(hidden).to(ScalarType.Float64), labels);   // the same rounded logits, in float64
            Assert.True(RelDiff(nll, exact) <= 1e-6, $"fused vs float64 of the same logits {RelDiff(nll, exact):E2}");
        }
        Assert.True(RelDiff(nll, refNll) <= 1e-6, $"nll {RelDiff(nll, refNll):E2}");
        foreach (var (name, g) in refGrads)
            Assert.True(RelDiff(grads[name], g) <= 2e-2, $"{name}: {RelDiff(grads[name], g):E2}");
        Assert.All(grads.Values, g => Assert.Equal(ScalarType.BFloat16, g.dtype));
    }
}
