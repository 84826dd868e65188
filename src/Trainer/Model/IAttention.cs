using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// The causal attention core of a decoder layer, swappable so that sequence parallelism (ring,
/// Ulysses, hybrid) can replace single-device attention without touching the model.
/// Inputs are this rank's shard of the sequence, RoPE already applied with global positions:
/// q (B, Hq, Tlocal, D), k and v (B, Hkv, Tlocal, D) with Hq a multiple of Hkv (grouped-query).
/// Returns (B, Hq, Tlocal, D): softmax(q·kᵀ/√D + causal mask over the *global* token order)·v.
/// Right padding needs no mask: padded tokens come after every real token and carry no labels.
/// </summary>
public interface IAttention
{
    Tensor Forward(Tensor q, Tensor k, Tensor v);

    /// <summary>Ranks that each hold an equal shard of every sequence (the SP group; 1 on one device). The
    /// global length is the local one times this, which length-dependent RoPE (dynamic NTK) needs.</summary>
    int SequenceShards => 1;
}
