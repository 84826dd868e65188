using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>Merges attention over disjoint key blocks using each block's log-sum-exp.</summary>
public static class LseMerge
{
    /// <summary>
    /// In place: (out, lse) ← the attention over the union of the keys seen so far and the block's keys.
    /// out (B, H, T, D) and lse (B, H, T, 1) are accumulators in float32/float64 (may be views of a
    /// larger accumulator); blockOut (B, H, T, D), blockLse (B, H, T).
    /// Naive form: lse' = log(e^lse + e^lse_b), out' = (e^lse·out + e^lse_b·out_b) / (e^lse + e^lse_b).
    /// The sigmoid form below is the same thing without overflow.
    /// </summary>
    public static void Merge(Tensor output, Tensor lse, Tensor blockOut, Tensor blockLse)
    {
        using var scope = torch.NewDisposeScope();
        var bo = blockOut.to(output.dtype);
        var bl = blockLse.to(lse.dtype).unsqueeze(-1); // (B, H, T, 1)
        output.sub_(torch.sigmoid(bl - lse) * (output - bo));
        lse.sub_(torch.nn.functional.logsigmoid(lse - bl));
    }
}
