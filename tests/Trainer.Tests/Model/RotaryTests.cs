using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class RotaryTests
{
    [Fact]
    public void Apply_ArangePositions_MatchesContiguousRopeFromDefinition()
    {
        using var scope = NewDisposeScope();
        const int t = 6, d = 8;
        const double theta = 10000.0;
        using var g = new Generator(1, CPU);
        var x = randn([1, 2, t, d], dtype: ScalarType.Float64, generator: g);
        var (cos, sin) = Rotary.CosSin(Positions(1, t), d, theta, ScalarType.Float64);
        var rotated = Rotary.Apply(x, cos, sin);

        // HF's layout by hand: pair (i, i + d/2) at position p rotates by p · θ^(−2i/d).
        var xs = x.data<double>().ToArray();
        var ys = rotated.data<double>().ToArray();
        for (var h = 0; h < 2; h++)
            for (var p = 0; p < t; p++)
                for (var i = 0; i < d / 2; i++)
                {
                    var angle = p * Math.Pow(theta, -2.0 * i / d);
                    var baseIndex = (h * t + p) * d;
                    var x1 = xs[baseIndex + i];
                    var x2 = xs[baseIndex + i + d / 2];
                    Assert.Equal(x1 * Math.Cos(angle) - x2 * Math.Sin(angle), ys[baseIndex + i], 12);
                    Assert.Equal(x2 * Math.Cos(angle) + x1 * Math.Sin(angle), ys[baseIndex + i + d / 2], 12);
                }
    }

    [Fact]
    public void Hidden_PositionsShiftedByConstant_Unchanged()
    {
        // RoPE makes attention depend on position differences only: adding 1000 to every position
        // must not change anything — and does change q·k if positions were ignored or misapplied.
        using var scope = NewDisposeScope();
        var model = new CausalLM(Micro(qwen: false), new MathAttention(), ScalarType.Float64, initSeed: 2);
        var ids = Ids(2, 8, 32, 3);
        var a = model.Hidden(ids, Positions(2, 8));
        var b = model.Hidden(ids, Positions(2, 8, offset: 1000));
        Assert.True(MaxAbsDiff(a, b) < 1e-10, $"{MaxAbsDiff(a, b)}");

        // Control: a different spacing of positions does change the output.
        var spread = model.Hidden(ids, Positions(2, 8) * 3);
        Assert.True(MaxAbsDiff(a, spread) > 1e-4);
    }

    /// <summary>
    /// Causal attention over the global order for tokens held in a permuted layout, as a sequence-
    /// parallel rank holds zigzag chunks: the attention itself knows the layout (like ring attention),
    /// while everything else in the model is per token.
    /// </summary>
    private sealed class LayoutAttention(Tensor layout) : IAttention
    {
        private readonly Tensor toGlobal = layout.argsort();
        public Tensor Forward(Tensor q, Tensor k, Tensor v)
        {
            var output = new MathAttention().Forward(
                q.index_select(2, toGlobal), k.index_select(2, toGlobal), v.index_select(2, toGlobal));
            return output.index_select(2, layout);                                         // back to the layout
        }
    }

    [Fact]
    public void Hidden_ZigzagLayoutWithGlobalPositionIds_EqualsPermutedContiguousOutput()
    {
        using var scope = NewDisposeScope();
        const long t = 12;
        var cfg = Micro(qwen: true);
        var model = new CausalLM(cfg, new MathAttention(), ScalarType.Float64, initSeed: 5);
        Perturb(model, 6);
        var ids = Ids(1, t, 32, 7);
        var reference = model.Hidden(ids, Positions(1, t));                                // (1, T, H)

        // Zigzag for 2 ranks: 4 chunks of 3, rank 0 holds chunks 0 and 3, rank 1 holds 1 and 2.
        var layout = tensor(new long[] { 0, 1, 2, 9, 10, 11, 3, 4, 5, 6, 7, 8 });
        model.SetAttention(new LayoutAttention(layout));
        var permuted = model.Hidden(ids.index_select(1, layout), layout.unsqueeze(0));

        Assert.True(MaxAbsDiff(permuted, reference.index_select(1, layout)) < 1e-12);

        // Control: the same layout with arange positions (what RoPE from tensor order would do) differs.
        var wrong = model.Hidden(ids.index_select(1, layout), Positions(1, t));
        Assert.True(MaxAbsDiff(wrong, reference.index_select(1, layout)) > 1e-4);
    }
}
