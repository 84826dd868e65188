using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>Linear layers of the decoder and the bookkeeping to swap them (LoRA).</summary>
internal static class Projections
{
    /// <summary>
    /// A Linear (weight out×in, optional bias) filled with zeros: every weight is set afterwards, by
    /// <see cref="WeightInit"/> or from a checkpoint, so the default random init would be wasted work.
    /// </summary>
    public static Linear Linear(long inFeatures, long outFeatures, bool bias, ScalarType dtype, Device? device)
    {
        var w = new Parameter(zeros(outFeatures, inFeatures, dtype: dtype, device: device));
        var b = bias ? new Parameter(zeros(outFeatures, dtype: dtype, device: device)) : null;
        return nn.Linear(w, b);
    }

    /// <summary>
    /// Re-registers the named submodules in their canonical order after one of them was replaced, so
    /// parameter order (optimizer state, checkpoints) does not depend on what was swapped.
    /// </summary>
    public static void Reregister(nn.Module owner, IEnumerable<string> names, Func<string, nn.Module> get)
    {
        foreach (var name in names) owner.register_module(name, null!);
        foreach (var name in names) owner.register_module(name, get(name));
    }
}
