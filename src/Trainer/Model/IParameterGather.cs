using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// ZeRO stage 3's hook in the model: between uses a unit's parameters (the embedding, a decoder layer, the
/// final norm, the LM head) hold no storage; <see cref="Gather"/> fills them with their full values just
/// before the unit runs and <see cref="Release"/> frees them right after. The unit's gradients never reach
/// <c>.grad</c>: <see cref="ReduceScatter"/> sums them over the world into the rank's partition as soon as
/// the unit's backward is done. All three are collectives: every rank calls them in the same order.
/// </summary>
public interface IParameterGather
{
    /// <summary>The unit's parameters get their full values (a collective).</summary>
    void Gather(nn.Module unit);

    /// <summary>The unit's parameters give their storage back.</summary>
    void Release(nn.Module unit);

    /// <summary>Sums the gradients of the unit's trainable parameters (in the order of <c>unit.parameters()</c>, null
    /// for none) over the world into this rank's partition (a collective).</summary>
    void ReduceScatter(nn.Module unit, IReadOnlyList<Tensor?> grads);
}
