using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Single-device causal attention through LibTorch's fused <c>scaled_dot_product_attention</c>
/// (flash kernel on CPU for float32/float64/bf16, math fallback otherwise).
/// Grouped-query attention: k/v heads are repeated HF's way (repeat_interleave on the head dim), so
/// query head h reads kv head h / (Hq / Hkv).
/// </summary>
public sealed class SdpaAttention : IAttention
{
    public Tensor Forward(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        var (kr, vr) = GroupedQuery.RepeatKv(q, k, v);
        // The TorchSharp parameter really is spelled is_casual.
        var output = nn.functional.scaled_dot_product_attention(q, kr, vr, is_casual: true); // (B, Hq, T, D)
        return output.MoveToOuterDisposeScope();
    }
}
