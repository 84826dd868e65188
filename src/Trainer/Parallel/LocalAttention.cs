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
        // Packed sequences: attention only within each document (the ids cover this whole sequence).
        var docs = PackedDocuments.Current is { } ids ? DocumentIds.From(ids) : null;
        if (docs is not null && docs.Length != q.shape[2])
            throw new ArgumentException($"packed document ids cover {docs.Length} tokens but the sequence has {q.shape[2]}");
        var (output, lse) = attention.Timer.TimeForward(() => docs is null
            ? attention.Kernel.Forward(q, k, v, causal: true)
            : VarlenBlock.Forward(attention.Kernel, q, k, v, true, docs, docs));
        ctx.save_for_backward([q, k, v, output.detach(), lse]);
        ctx.save_data("attention", attention);
        ctx.save_data("docs", docs!);
        return [output];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var attention = (LocalAttention)ctx.get_data("attention");
        var docs = ctx.get_data("docs") as DocumentIds;
        var s = ctx.get_saved_variables();
        return AutogradFailure.Guard(null, s[0], 4, () =>
        {
            var (dq, dk, dv) = attention.Timer.TimeBackward(() => docs is null
                ? attention.Kernel.Backward(gradOutputs[0], s[0], s[1], s[2], s[3], s[4], causal: true)
                : VarlenBlock.Backward(attention.Kernel, gradOutputs[0], s[0], s[1], s[2], s[3], s[4], true, docs, docs));
            return [dq, dk, dv, null!];
        });
    }
}
