using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Token-level losses as sums, never means: the caller divides by the label-token count of the whole
/// optimizer step (all micro-batches, all ranks), which is what makes gradient accumulation and
/// sequence parallelism reproduce single-device training exactly.
/// Labels are already shifted (label[t] is the token after t) and −100 where nothing is learned.
/// </summary>
public static class Losses
{
    public const long IgnoreIndex = -100;

    /// <summary>Per-token negative log-likelihood (B, T), 0 at ignored positions. Computed in fp32 (or fp64).</summary>
    public static Tensor TokenNll(Tensor logits, Tensor labels)
    {
        var (b, t, v) = (logits.shape[0], logits.shape[1], logits.shape[2]);
        var x = logits.dtype == ScalarType.Float64 ? logits : logits.to(ScalarType.Float32);
        return F.cross_entropy(x.reshape(b * t, v), labels.reshape(b * t), ignore_index: IgnoreIndex, reduction: nn.Reduction.None)
                .reshape(b, t);                                                                        // (B, T)
    }

    /// <summary>Sum of the token losses of this shard (a scalar).</summary>
    public static Tensor SftLossSum(Tensor logits, Tensor labels) => TokenNll(logits, labels).sum();

    /// <summary>Per-sequence sum of log p(label) over this shard's labelled tokens (B).</summary>
    public static Tensor SequenceLogProbs(Tensor logits, Tensor labels) => -TokenNll(logits, labels).sum(1);
}

/// <summary>Direct Preference Optimization with the sigmoid loss (Rafailov et al.), on full-sequence log-prob sums.</summary>
public static class DpoLoss
{
    public sealed record Result(Tensor Losses, Tensor ChosenRewards, Tensor RejectedRewards);

    /// <summary>
    /// loss = −log σ(β·[(π_c − π_r) − (ref_c − ref_r)]) per pair; rewards are β·(π − ref), detached.
    /// </summary>
    public static Result Compute(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected, double beta)
    {
        using Scalar b = beta;                     // held, not an implicit temporary (see AdamW.Update)
        var logits = (policyChosen - policyRejected) - (refChosen - refRejected);
        var losses = -F.logsigmoid(logits.mul(b));
        return new Result(losses, (policyChosen - refChosen).mul(b).detach(), (policyRejected - refRejected).mul(b).detach());
    }
}
