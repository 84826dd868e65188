using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// The C# side of tensors that a custom backward hands to the autograd engine. TorchSharp neither opens a
/// dispose scope around a custom backward nor releases what it returns: the engine copies each returned
/// tensor (a reference, no data), and the C# wrapper left in the caller's scope (the micro-batch's) kept the
/// tensor alive to the end of backward — per checkpointed layer its (T, H) input gradient, for the fused loss
/// its (T, H) hidden gradient (measured with LONGSEQ_MEMORY_PROBE: t·H·4 B per layer done). Each wrapper
/// handed over here is disposed as soon as the engine certainly holds its own reference: when the next
/// custom backward on this thread begins (the engine copied the outputs of the previous one before it
/// moved on), and after the whole backward (<see cref="ReleaseAll"/>). Per thread, as backward on the CPU
/// runs on the thread that called it — and ranks as threads each run their own.
/// </summary>
public static class HandedOver
{
    [ThreadStatic] private static List<Tensor>? _pending;

    /// <summary><paramref name="gradient"/>, to be released once the engine has it.</summary>
    public static Tensor? Gradient(Tensor? gradient)
    {
        if (gradient is not null) (_pending ??= []).Add(gradient);
        return gradient;
    }

    /// <summary>Releases what earlier backwards handed over; first thing in every custom backward that hands over.</summary>
    public static void ReleaseAll()
    {
        if (_pending is not { Count: > 0 } pending) return;
        foreach (var t in pending) t.Dispose();
        pending.Clear();
    }

    /// <summary>
    /// A parameter's gradient from a custom backward, added into its <c>.grad</c> here instead of returned:
    /// returned, the engine's AccumulateGrad finds the C# reference beside its own and must copy rather than
    /// take it — a second copy of every checkpointed layer's weight gradients (and of the (V, H) head's) alive
    /// to the end of backward. Only where nothing else wants the gradient back (not inside a ZeRO-3 unit,
    /// whose backward collects the gradients with autograd.grad to reduce-scatter them).
    /// </summary>
    public static void AccumulateInto(Parameter p, Tensor gradient)
    {
        using var _ = no_grad();
        if (p.grad is { } existing) existing.add_(gradient);
        else p.grad = gradient;
    }
}
