using TorchSharp;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Causal attention of a whole sequence on one rank through an <see cref="IAttentionKernel"/> (the fused
/// CPU flash kernel by default: no (T, T) score matrix, fused backward). Used as the inner attention of
/// Ulysses, and usable by the model when there is no sequence parallelism.
/// </summary>
public sealed class LocalAttention(IAttentionKernel? kernel = null, AttentionTimer? timer = null) : IAttention
{
    public IAttentionKernel Kernel { get; } = kernel ?? BlockAttention.Auto;

    public AttentionTimer Timer { get; } = timer ?? new AttentionTimer();

    /// <summary>q (B, Hq, T, D), k/v (B, Hkv, T, D) → (B, Hq, T, D).</summary>
    public Tensor Forward(Tensor q, Tensor k, Tensor v) => LocalAttentionFunction.apply(q, k, v, this)[0];
}

internal sealed class LocalAttentionFunction : autograd.MultiTensorFunction<LocalAttentionFunction>
{
    public override string Name => nameof(LocalAttentionFunction);

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (q, k, v, attention) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (LocalAttention)vars[3]);
        var (output, lse) = attention.Timer.TimeForward(() => attention.Kernel.Forward(q, k, v, causal: true));
        ctx.save_for_backward([q, k, v, output.detach(), lse]);
        ctx.save_data("attention", attention);
        return [output];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var attention = (LocalAttention)ctx.get_data("attention");
        var s = ctx.get_saved_variables();
        return AutogradFailure.Guard(null, s[0], 4, () =>
        {
            var (dq, dk, dv) = attention.Timer.TimeBackward(() =>
                attention.Kernel.Backward(gradOutputs[0], s[0], s[1], s[2], s[3], s[4], causal: true));
            return [dq, dk, dv, null!];
        });
    }
}
