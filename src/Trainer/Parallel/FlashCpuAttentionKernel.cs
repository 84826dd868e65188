using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// LibTorch's fused CPU flash-attention kernel, which returns the log-sum-exp and has a fused backward.
/// TorchSharp does not bind it, but TorchScript reaches it. The script is a constant compiled once per
/// process (a TorchScript compile error terminates the process, so nothing user-supplied goes in it);
/// call <see cref="EnsureCompiled"/> at start-up. Runs float32, float64 and bfloat16 on CPU.
/// </summary>
public sealed class FlashCpuAttentionKernel : IAttentionKernel
{
    private const string Script = """
        def attend(q: Tensor, k: Tensor, v: Tensor, causal: bool):
            return torch._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal)

        def attend_backward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, causal: bool):
            return torch._scaled_dot_product_flash_attention_for_cpu_backward(dout, q, k, v, out, lse, 0.0, causal)

        """; // TorchScript wants the last line to end with a newline

    private static readonly Lazy<jit.CompilationUnit> Compiled = new(() => jit.compile(Script), LazyThreadSafetyMode.ExecutionAndPublication);

    public static FlashCpuAttentionKernel Instance { get; } = new();

    public static void EnsureCompiled() => _ = Compiled.Value;

    public string Name => "flash-cpu";

    public bool Supports(Tensor q) =>
        q.device_type == DeviceType.CPU && q.dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.BFloat16;

    public (Tensor Out, Tensor Lse) Forward(Tensor q, Tensor k, Tensor v, bool causal)
    {
        using var scope = torch.NewDisposeScope();
        CheckCausal(q, k, causal);
        var n = GroupedQuery.Groups(q, k);
        var (o, lse) = ((Tensor, Tensor))Compiled.Value.invoke("attend",
            q.contiguous(), GroupedQuery.Repeat(k, n).contiguous(), GroupedQuery.Repeat(v, n).contiguous(), causal);
        return scope.MoveToOuter(o, lse);
    }

    public (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal)
    {
        using var scope = torch.NewDisposeScope();
        CheckCausal(q, k, causal);
        var n = GroupedQuery.Groups(q, k);
        var (dq, dk, dv) = ((Tensor, Tensor, Tensor))Compiled.Value.invoke("attend_backward",
            dout.to(q.dtype).contiguous(), q.contiguous(),
            GroupedQuery.Repeat(k, n).contiguous(), GroupedQuery.Repeat(v, n).contiguous(),
            output.to(q.dtype).contiguous(), lse.to(BlockAttention.AccumulationType(q.dtype)).contiguous(), causal);
        return scope.MoveToOuter(dq, GroupedQuery.SumGroups(dk, n), GroupedQuery.SumGroups(dv, n));
    }

    private static void CheckCausal(Tensor q, Tensor k, bool causal)
    {
        // The kernel's causal mask is aligned to the top-left corner; only square blocks mean "token i sees 0..i".
        if (causal && q.shape[2] != k.shape[2])
            throw new ArgumentException($"a causal block needs as many queries as keys (got {q.shape[2]} and {k.shape[2]})");
    }
}
