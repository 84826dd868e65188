using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class CausalLMGradientTests
{
    /// <summary>A scalar loss that touches every logit: Σ logits · W for a fixed random W.</summary>
    private static double Loss(CausalLM model, Tensor ids, Tensor pos, Tensor w, bool backward)
    {
        using var scope = NewDisposeScope();
        var loss = (model.call(ids, pos) * w).sum();
        if (backward) loss.backward();
        return loss.item<double>();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Gradients_Float64_MatchCentralFiniteDifferences(bool qwen)
    {
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(qwen), new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        Perturb(model, 4);
        var ids = Ids(2, 7, 32, seed: 5);
        var pos = Positions(2, 7);
        using var g = new Generator(6, CPU);
        var w = randn([2, 7, 32], dtype: ScalarType.Float64, generator: g);
        Loss(model, ids, pos, w, backward: true);

        var names = new List<string>
        {
            "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
            "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight",
            "model.layers.0.post_attention_layernorm.weight", "model.layers.1.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
        };
        names.Add(qwen ? "model.layers.0.self_attn.k_proj.bias" : "lm_head.weight");
        if (qwen) names.Add("model.layers.1.self_attn.q_proj.bias");

        var parameters = Params(model);
        var rng = new Random(7);
        const double h = 1e-6;
        var checkedCount = 0;
        foreach (var name in names)
        {
            var p = parameters[name];
            var analytic = p.grad!.view(-1);
            for (var n = 0; n < 3; n++)
            {
                var i = rng.NextInt64(p.numel());
                double plus, minus, orig;
                using (no_grad())
                {
                    var flat = p.view(-1);
                    orig = flat[i].item<double>();
                    flat[i].fill_(orig + h);
                    plus = Loss(model, ids, pos, w, backward: false);
                    flat[i].fill_(orig - h);
                    minus = Loss(model, ids, pos, w, backward: false);
                    flat[i].fill_(orig);
                }
                var numeric = (plus - minus) / (2 * h);
                var exact = analytic[i].item<double>();
                Assert.True(Math.Abs(numeric - exact) <= 1e-7 + 1e-6 * Math.Abs(exact),
                    $"{name}[{i}]: finite difference {numeric:R}, autograd {exact:R}");
                checkedCount++;
            }
        }
        Assert.Equal(names.Count * 3, checkedCount);
    }

    [Fact]
    public void Logits_TiedEmbeddings_UseEmbeddingMatrix()
    {
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(qwen: true), new MathAttention(), ScalarType.Float64, initSeed: 1);
        Assert.DoesNotContain(Params(model).Keys, n => n.StartsWith("lm_head"));
        var hidden = Hidden(model);
        var expected = hidden.matmul(Params(model)["model.embed_tokens.weight"].t());
        Assert.True(MaxAbsDiff(model.Logits(hidden), expected) < 1e-14);
    }

    private static Tensor Hidden(CausalLM model) => model.Hidden(Ids(1, 5, 32, 2), Positions(1, 5));
}
