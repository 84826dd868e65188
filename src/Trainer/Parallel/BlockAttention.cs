using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Block attention with log-sum-exp through the best kernel for the tensors: the fused CPU flash
/// kernel where it runs, the math kernel otherwise (other devices, other dtypes).
/// </summary>
public static class BlockAttention
{
    /// <summary>The kernel that picks flash-cpu or math per call.</summary>
    public static IAttentionKernel Auto { get; } = new AutoKernel();

    /// <summary>(out, lse) of softmax(q·kᵀ/√D [+ causal mask])·v; see <see cref="IAttentionKernel"/>.</summary>
    public static (Tensor Out, Tensor Lse) Attend(Tensor q, Tensor k, Tensor v, bool causal) =>
        Auto.Forward(q, k, v, causal);

    public static (Tensor Dq, Tensor Dk, Tensor Dv) AttendBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal) =>
        Auto.Backward(dout, q, k, v, output, lse, causal);

    /// <summary>The dtype blocks are merged and gradients accumulated in: float64 for float64, else float32.</summary>
    public static ScalarType AccumulationType(ScalarType dtype) =>
        dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    private sealed class AutoKernel : IAttentionKernel
    {
        public string Name => "auto";

        public bool Supports(Tensor q) => true;

        public (Tensor Out, Tensor Lse) Forward(Tensor q, Tensor k, Tensor v, bool causal) =>
            Pick(q).Forward(q, k, v, causal);

        public (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal) =>
            Pick(q).Backward(dout, q, k, v, output, lse, causal);

        private static IAttentionKernel Pick(Tensor q) =>
            FlashCpuAttentionKernel.Instance.Supports(q) ? FlashCpuAttentionKernel.Instance : MathAttentionKernel.Instance;
    }
}
