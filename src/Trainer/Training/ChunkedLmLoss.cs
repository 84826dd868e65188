using LongSeqService.Trainer.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// The LM head and the token loss fused: hidden → logits → log-softmax → NLL over chunks of tokens, so the
/// (T, V) logits are never whole — with a real vocabulary (151,936) they and their copies (the float32
/// cast, the log-softmax, their gradients) were most of a rank's memory. Only tokens with a label are
/// computed (prompt tokens under SFT masking cost nothing). Forward keeps one float32 log-sum-exp per
/// token; backward recomputes each chunk's logits and turns them into d(logits) = (softmax − onehot)·g in
/// place, then accumulates d(hidden) and d(head weight) chunk by chunk. Softmax statistics are float32
/// for float32 and bfloat16 models (float64 for float64): the logits matmul runs in the model dtype,
/// everything after it in the accumulation type, as the unfused <see cref="Losses.TokenNll"/> does.
/// Works for tied heads (the weight is the embedding matrix: autograd adds both gradients) and frozen
/// ones (LoRA never adapts lm_head: its gradient is then not computed).
/// </summary>
public sealed class ChunkedLmLoss : autograd.SingleTensorFunction<ChunkedLmLoss>
{
    // Argument layout of apply(): the chunk size and the parameter to accumulate into first, then the tensors.
    private const int ChunkArg = 0, IntoArg = 1, HiddenArg = 2, WeightArg = 3, LabelsArg = 4;

    public override string Name => nameof(ChunkedLmLoss);

    /// <summary>(B, T, H) hidden and (B, T) shifted labels (−100: no loss) → (B, T) per-token NLL, 0 at ignored
    /// positions, in float32 (float64 for float64 models). <paramref name="weight"/> is the (V, H) head. With
    /// <paramref name="gradientInto"/> (the head's own parameter, outside a ZeRO-3 unit) backward adds the head's
    /// gradient into its <c>.grad</c> rather than returning it (<see cref="HandedOver.AccumulateInto"/>).</summary>
    public static Tensor TokenNll(Tensor hidden, Tensor weight, Tensor labels, int chunkTokens, Parameter? gradientInto = null)
    {
        if (chunkTokens <= 0) throw new ArgumentOutOfRangeException(nameof(chunkTokens), chunkTokens, "the loss chunk must hold at least one token");
        var (b, t, h) = (hidden.shape[0], hidden.shape[1], hidden.shape[2]);
        var flatHidden = hidden.reshape(b * t, h);                                         // (N, H)
        var flatLabels = labels.reshape(b * t);                                            // (N)
        bool needsGrad = is_grad_enabled() && (hidden.requires_grad || weight.requires_grad);
        var nll = needsGrad
            ? apply(chunkTokens, gradientInto is null ? null! : new GradientTarget(gradientInto), flatHidden, weight, flatLabels)
            : Forward(flatHidden, weight, flatLabels, chunkTokens).Nll;
        return nll.reshape(b, t);                                                          // (B, T)
    }

    /// <summary>The accumulation type of the softmax statistics.</summary>
    public static ScalarType AccumulationType(ScalarType dtype) => dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    // Not the Parameter itself among apply()'s arguments: a tensor there would be one more input of the function.
    private sealed record GradientTarget(Parameter Weight);

    private sealed record Saved(long Tokens, bool HiddenNeedsGrad, bool WeightNeedsGrad, int ChunkTokens, Parameter? Into);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (chunk, hidden, weight, labels) = ((int)vars[ChunkArg], (Tensor)vars[HiddenArg], (Tensor)vars[WeightArg], (Tensor)vars[LabelsArg]);
        var f = Forward(hidden, weight, labels, chunk);
        ctx.save_for_backward([f.LabelledHidden, weight, f.Labelled, f.Rows, f.Lse]);
        ctx.save_data("saved", new Saved(hidden.shape[0], hidden.requires_grad, weight.requires_grad, chunk, (vars[IntoArg] as GradientTarget)?.Weight));
        return f.Nll;
    }

    private sealed record ForwardResult(Tensor Nll, Tensor LabelledHidden, Tensor Labelled, Tensor Rows, Tensor Lse);

    /// <summary>(N, H) hidden, (V, H) weight, (N) labels → (N) NLL and what backward needs: the labelled rows'
    /// hidden (M, H), their labels (M), their row indices (M) and log-sum-exps (M).</summary>
    private static ForwardResult Forward(Tensor hidden, Tensor weight, Tensor labels, int chunk)
    {
        using var scope = NewDisposeScope();
        var acc = AccumulationType(hidden.dtype);
        using Scalar ignore = Losses.IgnoreIndex;
        var rows = labels.ne(ignore).nonzero().reshape(-1);                                // (M) int64
        var labelled = labels.index_select(0, rows);                                       // (M)
        var hv = hidden.index_select(0, rows);                                             // (M, H)
        long m = rows.shape[0];
        var lse = empty(m, dtype: acc, device: hidden.device);                             // (M)
        var target = empty(m, dtype: acc, device: hidden.device);                          // (M)
        for (long start = 0; start < m; start += chunk)
        {
            using var chunkScope = NewDisposeScope();
            long c = Math.Min(chunk, m - start);
            var logits = nn.functional.linear(hv.narrow(0, start, c), weight).to(acc);    // (C, V): the only (·, V) tensor alive
            lse.narrow(0, start, c).copy_(logits.logsumexp(1));
            target.narrow(0, start, c).copy_(logits.gather(1, labelled.narrow(0, start, c).unsqueeze(1)).squeeze(1));
        }
        var nll = zeros(hidden.shape[0], dtype: acc, device: hidden.device)               // (N)
            .index_copy_(0, rows, lse - target);
        return new ForwardResult(nll.MoveToOuterDisposeScope(), hv.MoveToOuterDisposeScope(), labelled.MoveToOuterDisposeScope(),
            rows.MoveToOuterDisposeScope(), lse.MoveToOuterDisposeScope());
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        MemoryProbe.Mark("loss_backward");
        HandedOver.ReleaseAll();
        var s = (Saved)ctx.get_data("saved");
        var saved = ctx.get_saved_variables();
        var (hv, weight, labelled, rows, lse) = (saved[0], saved[1], saved[2], saved[3], saved[4]);
        var grads = new List<Tensor?> { null, null, null, null, null };
        using var noGrad = no_grad();
        var acc = lse.dtype;
        long m = rows.shape[0];
        var g = gradOutput.index_select(0, rows).to(acc);                                  // (M) dLoss/dNLL of the labelled rows
        var dHidden = s.HiddenNeedsGrad ? empty_like(hv) : null;                           // (M, H)
        var dWeight = s.WeightNeedsGrad ? zeros(weight.shape, dtype: acc, device: weight.device) : null; // (V, H), summed over chunks
        for (long start = 0; start < m; start += s.ChunkTokens)
        {
            using var chunkScope = NewDisposeScope();
            long c = Math.Min(s.ChunkTokens, m - start);
            var h = hv.narrow(0, start, c);                                                // (C, H)
            var d = nn.functional.linear(h, weight).to(acc);                               // (C, V) logits, recomputed
            d.sub_(lse.narrow(0, start, c).unsqueeze(1)).exp_();                           // softmax
            d.scatter_add_(1, labelled.narrow(0, start, c).unsqueeze(1), full(c, 1, -1.0, dtype: acc, device: d.device)); // − onehot(label)
            d.mul_(g.narrow(0, start, c).unsqueeze(1));                                    // d(logits) (C, V)
            var dm = d.to(weight.dtype);
            dHidden?.narrow(0, start, c).copy_(dm.mm(weight));                             // (C, H)
            if (dWeight is not null)
            {
                if (acc == weight.dtype) dWeight.addmm_(dm.t(), h);
                else dWeight.add_(dm.t().mm(h).to(acc));                                   // bf16 products, summed in float32
            }
        }
        if (dHidden is not null)
            grads[HiddenArg] = HandedOver.Gradient(zeros(s.Tokens, hv.shape[1], dtype: hv.dtype, device: hv.device).index_copy_(0, rows, dHidden)); // (N, H)
        if (dWeight is not null)
        {
            var w = dWeight.dtype == weight.dtype ? dWeight : dWeight.to(weight.dtype);
            // This backward opens no scope: a wrapper left to the caller's would keep a (V, H) sum alive beside .grad.
            if (!ReferenceEquals(w, dWeight)) dWeight.Dispose();
            if (s.Into is { } into)
            {
                HandedOver.AccumulateInto(into, w);
                w.Dispose();
            }
            else grads[WeightArg] = w;
        }
        dHidden?.Dispose();
        gradOutput.Dispose();                                                              // TorchSharp's wrapper, in the caller's scope otherwise
        MemoryProbe.Mark("loss_backward_end");
        return grads!;
    }
}
