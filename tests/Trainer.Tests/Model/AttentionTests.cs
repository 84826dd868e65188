using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

public class AttentionTests
{
    private static (Tensor Q, Tensor K, Tensor V) Qkv(ScalarType dtype, long hq = 6, long hkv = 2, long t = 11, long d = 8)
    {
        using var g = new Generator(11, CPU);
        var q = randn([2, hq, t, d], dtype: ScalarType.Float64, generator: g).to_type(dtype).requires_grad_();
        var k = randn([2, hkv, t, d], dtype: ScalarType.Float64, generator: g).to_type(dtype).requires_grad_();
        var v = randn([2, hkv, t, d], dtype: ScalarType.Float64, generator: g).to_type(dtype).requires_grad_();
        return (q, k, v);
    }

    private static (Tensor Out, Tensor Dq, Tensor Dk, Tensor Dv) Run(IAttention attention, ScalarType dtype)
    {
        var (q, k, v) = Qkv(dtype);
        var output = attention.Forward(q, k, v);
        using var g = new Generator(12, CPU);
        var upstream = randn(output.shape, dtype: ScalarType.Float64, generator: g).to_type(dtype);
        (output * upstream).sum().backward();
        return (output.detach(), q.grad!, k.grad!, v.grad!);
    }

    [Fact]
    public void Sdpa_Float64GroupedQuery_MatchesMathForwardAndBackward()
    {
        using var scope = NewDisposeScope();
        var fused = Run(new SdpaAttention(), ScalarType.Float64);
        var reference = Run(new MathAttention(), ScalarType.Float64);
        Assert.Equal([2L, 6, 11, 8], fused.Out.shape);
        Assert.Equal([2L, 2, 11, 8], fused.Dk.shape);
        Assert.True(MaxAbsDiff(fused.Out, reference.Out) < 1e-12);
        Assert.True(MaxAbsDiff(fused.Dq, reference.Dq) < 1e-12);
        Assert.True(MaxAbsDiff(fused.Dk, reference.Dk) < 1e-12);
        Assert.True(MaxAbsDiff(fused.Dv, reference.Dv) < 1e-12);
    }

    [Fact]
    public void Sdpa_BFloat16_CloseToFloat64Reference()
    {
        using var scope = NewDisposeScope();
        var fused = Run(new SdpaAttention(), ScalarType.BFloat16);
        var reference = Run(new MathAttention(), ScalarType.Float64);
        Assert.Equal(ScalarType.BFloat16, fused.Out.dtype);
        Assert.True(MaxAbsDiff(fused.Out, reference.Out) < 0.05, $"bf16 forward off by {MaxAbsDiff(fused.Out, reference.Out)}");
        Assert.True(MaxAbsDiff(fused.Dk, reference.Dk) < 0.25, $"bf16 dK off by {MaxAbsDiff(fused.Dk, reference.Dk)}");
    }

    [Fact]
    public void Math_GroupedQuery_QueryHeadUsesKvHeadHDivGroups()
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = Qkv(ScalarType.Float64);
        var output = new MathAttention().Forward(q, k, v);                                 // (B, 6, T, D), groups = 3
        for (var h = 0; h < 6; h++)
        {
            // One-head attention for head h with kv head h / 3, written from the definition.
            var qh = q.narrow(1, h, 1);
            var kh = k.narrow(1, h / 3, 1);
            var vh = v.narrow(1, h / 3, 1);
            var scores = qh.matmul(kh.transpose(-2, -1)) / Math.Sqrt(8);
            var t = q.shape[2];
            var mask = ones(t, t, dtype: ScalarType.Bool).triu(1);
            var expected = scores.masked_fill(mask, double.NegativeInfinity).softmax(-1).matmul(vh);
            Assert.True(MaxAbsDiff(output.narrow(1, h, 1), expected) < 1e-14, $"head {h}");
        }
    }

    [Fact]
    public void Math_FirstToken_AttendsOnlyToItself()
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = Qkv(ScalarType.Float64, hq: 2, hkv: 2);
        var output = new MathAttention().Forward(q, k, v);
        Assert.True(MaxAbsDiff(output.narrow(2, 0, 1), v.narrow(2, 0, 1)) < 1e-15);
    }
}
