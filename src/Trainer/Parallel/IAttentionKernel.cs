using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Attention over one block of queries and one block of keys/values, returning the log-sum-exp of
/// the scores so that blocks can be merged (ring attention) and the backward can be recomputed from
/// the global output and log-sum-exp.
/// Shapes: q (B, Hq, Tq, D); k, v (B, Hkv, Tk, D) with Hq a multiple of Hkv (grouped-query: query head
/// h reads key/value head h / (Hq/Hkv)); out (B, Hq, Tq, D) in q's dtype; lse (B, Hq, Tq) in the
/// accumulation dtype (<see cref="BlockAttention.AccumulationType"/>). Causal blocks need Tq == Tk
/// (query i sees keys 0..i). Scale 1/√D.
/// </summary>
public interface IAttentionKernel
{
    string Name { get; }

    /// <summary>Whether this kernel runs tensors like <paramref name="q"/> (device and dtype).</summary>
    bool Supports(Tensor q);

    (Tensor Out, Tensor Lse) Forward(Tensor q, Tensor k, Tensor v, bool causal);

    /// <summary>
    /// Gradients of the block given the upstream gradient and the <em>final</em> output and lse of these
    /// queries (the merged ones when the block is part of a larger attention): with those, the
    /// block's softmax probabilities are exp(s − lse), exactly its share of the global softmax.
    /// dk and dv come back with Hkv heads (summed over the query heads that share them).
    /// </summary>
    (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool causal);
}
