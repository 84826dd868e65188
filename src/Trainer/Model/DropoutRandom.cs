using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// The random stream behind LoRA dropout, owned by one model replica. It is not the global generator
/// because ranks run as threads of one process and would interleave draws; and its state can be
/// snapshotted so that gradient checkpointing replays exactly the dropout masks of the forward pass.
/// </summary>
public sealed class DropoutRandom
{
    private long seed;
    private Generator? generator;

    public DropoutRandom(long seed) => this.seed = seed;

    /// <summary>
    /// Restarts the stream from a new seed (e.g. seed + rank, so that ranks holding different tokens
    /// do not draw the same masks).
    /// </summary>
    public void Reseed(long newSeed)
    {
        seed = newSeed;
        generator = null;
    }

    private Generator For(Device device)
    {
        if (generator is null || generator.device.type != device.type || generator.device.index != device.index)
        {
            // A fresh stream per device: masks are drawn on the device of the activations.
            generator = new Generator((ulong)seed, device);
        }
        return generator;
    }

    /// <summary>Inverted dropout: zeroes elements with probability p, scales the rest by 1/(1−p).</summary>
    public Tensor Dropout(Tensor x, double p)
    {
        if (p <= 0) return x.alias();
        if (p >= 1) return zeros_like(x);
        using var scope = NewDisposeScope();
        var keep = empty_like(x).bernoulli_(1 - p, For(x.device));
        return (x * keep / (1 - p)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The generator state now (null if nothing has been drawn yet), for a later <see cref="Restore"/>.
    /// Detached from any dispose scope: it lives as long as the autograd graph that keeps it.
    /// </summary>
    public Tensor? Snapshot() => generator?.get_state().DetachFromDisposeScope();

    /// <summary>Puts the stream back to a <see cref="Snapshot"/>; null means "never drawn".</summary>
    public void Restore(Tensor? state)
    {
        if (state is null) { generator = null; return; }
        generator!.set_state(state);
    }
}
