using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static LongSeqService.Trainer.Tests.Parallel.AttentionReference;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Parallel;

public class BlockAttentionTests
{
    public static TheoryData<string, bool, ScalarType> Kernels() => new()
    {
        { "flash-cpu", true, ScalarType.Float64 }, { "flash-cpu", false, ScalarType.Float64 },
        { "math", true, ScalarType.Float64 }, { "math", false, ScalarType.Float64 },
        { "flash-cpu", true, ScalarType.Float32 }, { "math", false, ScalarType.Float32 },
    };

    private static IAttentionKernel Kernel(string name) =>
        name == "math" ? MathAttentionKernel.Instance : FlashCpuAttentionKernel.Instance;

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_ForwardAndBackward_MatchAutogradReference(string name, bool causal, ScalarType dtype)
    {
        var kernel = Kernel(name);
        var tk = causal ? 12 : 7; // non-causal blocks may have fewer keys than queries
        var g = new Generator(3);
        var q = torch.randn(2, 6, 12, 8, dtype: dtype, generator: g);
        var (k, v) = (torch.randn(2, 2, tk, 8, dtype: dtype, generator: g), torch.randn(2, 2, tk, 8, dtype: dtype, generator: g));
        var dout = torch.randn(2, 6, 12, 8, dtype: dtype, generator: g);
        var tol = dtype == ScalarType.Float64 ? 1e-12 : 1e-5;
        var (q64, k64, v64) = (q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64));
        var expected = WithGrads((a, b, c) => Attention(a, b, c, causal), q64, k64, v64, dout.to(ScalarType.Float64));
        var expectedLse = ReferenceLse(q64, k64, causal);

        var (o, lse) = kernel.Forward(q, k, v, causal);
        var (dq, dk, dv) = kernel.Backward(dout, q, k, v, o, lse, causal);

        Assert.Equal(dtype, o.dtype);
        Assert.Equal(new long[] { 2, 6, 12 }, lse.shape);
        AssertClose(expected.Out, o, tol, "out");
        AssertClose(expectedLse, lse, tol, "lse");
        AssertClose(expected.Dq, dq, tol, "dq");
        AssertClose(expected.Dk, dk, tol, "dk");
        AssertClose(expected.Dv, dv, tol, "dv");
    }

    [Fact]
    public void FlashCpu_BFloat16_ReturnsFloat32Lse()
    {
        var x = torch.randn(1, 2, 8, 16).to(ScalarType.BFloat16);
        var (o, lse) = FlashCpuAttentionKernel.Instance.Forward(x, x, x, causal: true);
        Assert.Equal(ScalarType.BFloat16, o.dtype);
        Assert.Equal(ScalarType.Float32, lse.dtype);
    }

    [Fact]
    public void Merge_TwoKeyBlocks_EqualsAttentionOverTheirUnion()
    {
        var g = new Generator(5);
        var q = torch.randn(1, 2, 6, 4, dtype: ScalarType.Float64, generator: g);
        var k = torch.randn(1, 2, 10, 4, dtype: ScalarType.Float64, generator: g);
        var v = torch.randn(1, 2, 10, 4, dtype: ScalarType.Float64, generator: g);
        var (o1, l1) = BlockAttention.Attend(q, k.narrow(2, 0, 3), v.narrow(2, 0, 3), causal: false);
        var (o2, l2) = BlockAttention.Attend(q, k.narrow(2, 3, 7), v.narrow(2, 3, 7), causal: false);

        var (output, lse) = (o1.clone(), l1.unsqueeze(-1).clone());
        LseMerge.Merge(output, lse, o2, l2);

        AssertClose(Attention(q, k, v, causal: false), output, 1e-13, "merged out");
        AssertClose(ReferenceLse(q, k, causal: false), lse.squeeze(-1), 1e-13, "merged lse");
    }

    [Fact]
    public void LocalAttention_MatchesAutogradReference()
    {
        var (q, k, v, dout) = Inputs(1, 8, 4, 20, 8, ScalarType.Float64);
        var expected = WithGrads((a, b, c) => Attention(a, b, c), q, k, v, dout);
        var actual = WithGrads(new LocalAttention().Forward, q, k, v, dout);
        AssertClose(expected.Out, actual.Out, 1e-12, "out");
        AssertClose(expected.Dq, actual.Dq, 1e-12, "dq");
        AssertClose(expected.Dk, actual.Dk, 1e-12, "dk");
        AssertClose(expected.Dv, actual.Dv, 1e-12, "dv");
    }

    private static Tensor ReferenceLse(Tensor q, Tensor k, bool causal)
    {
        var kr = k.repeat_interleave(q.shape[1] / k.shape[1], dim: 1);
        var s = q.matmul(kr.transpose(-2, -1)) / Math.Sqrt(q.shape[^1]);
        if (causal) s = s.masked_fill(torch.ones(q.shape[2], k.shape[2], dtype: ScalarType.Bool).triu(1), double.NegativeInfinity);
        return s.logsumexp(-1);
    }
}
