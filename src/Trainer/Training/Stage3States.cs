using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// ZeRO stage 3 over the whole world (SP × DP ranks): the parameters themselves are partitioned
/// (<see cref="ShardedParameters"/>: each rank keeps its flat slice of every weight, gathers a unit's
/// weights just before the unit runs and frees them right after, in forward and again in the backward
/// recomputation), each unit's gradient is reduce-scattered as soon as its backward is done, and AdamW
/// (moments and, for bf16, fp32 masters) updates this rank's slice in place — no weight gather after the
/// step. The norm is stage 2's (per-rank partial squared sums, all-reduced in rank order). A frozen DPO
/// reference copy is partitioned the same way, without gradients.
/// </summary>
public sealed class Stage3States : IModelStates
{
    private readonly ICollectives _world;
    private readonly ShardedParameters _policy;
    private readonly ShardedParameters? _reference;
    private readonly Tensor[] _trainable;                  // the model's trainable parameters (empty between uses)
    private readonly FlatPartition.Run[] _mine;            // this rank's trainable runs, one AdamW slot each
    private readonly Tensor[] _weights;                    // views of the shard, one per run (owned: disposed here)
    private readonly double _maxGradNorm;
    private TimeSpan _normTime;

    public Stage3States(ICollectives world, CausalLM model, CausalLM? reference, JobSpec spec)
    {
        (_world, _maxGradNorm) = (world, spec.MaxGradNorm);
        _trainable = [.. model.parameters().Where(p => p.requires_grad)];
        _policy = new ShardedParameters(model, world, keepGradients: true);
        _reference = reference is null ? null : new ShardedParameters(reference, world, keepGradients: false);
        var t = _policy.Trainable;
        _mine = [.. t.Runs(t.Start, t.End)];
        _weights = [.. _mine.Select(r => _policy.WeightsOf(r).DetachFromDisposeScope())];
        Optimizer = new AdamW(_mine.Select((r, i) => new AdamWSlot(t.Parameters[r.Index].Name, r.Offset, _weights[i], _policy.IsMatrix(r.Index))).ToArray(),
            ModelStates.StateDevice(_policy.Shard), spec.AdamBeta1, spec.AdamBeta2, spec.AdamEpsilon, spec.WeightDecay);
    }

    public int ZeroStage => 3;
    public long Step => Optimizer.Step;
    public AdamW Optimizer { get; }
    public (long Start, long End) Range => (_policy.Trainable.Start, _policy.Trainable.End);
    public bool Partitioned => true;
    public bool CaptureNextGradient { get; set; }
    public double[]? CapturedGradient { get; private set; }
    public TimeSpan CommunicationTime => _policy.CommunicationTime + (_reference?.CommunicationTime ?? TimeSpan.Zero) + _normTime;

    /// <summary>This rank's trainable weights — its slice, plus whatever the model's trainable parameters still hold
    /// (nothing between units: a weight that is not released shows here) — their gradients and the optimizer
    /// state. Frozen base weights are partitioned too but, as in the other stages, not counted.</summary>
    public ModelStateBytes Bytes
    {
        get
        {
            long weights = _policy.Trainable.Length * _policy.Shard.element_size() + ModelStates.BytesOf(_trainable);
            return new(weights, _policy.Gradient.numel() * _policy.Gradient.element_size(), Optimizer.StateBytes);
        }
    }

    public double Update(double lr)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var gradient = _policy.Gradient;                                                      // (trainable partition), already summed
        if (CaptureNextGradient) (CapturedGradient, CaptureNextGradient) = (ModelStates.ToDoubles([_world.AllGather(gradient, 0)]), false);
        var t = _policy.Trainable;
        var grads = _mine.Select(r => gradient.narrow(0, r.Flat - t.Start, r.Length)).ToArray();
        double norm = ModelStates.PartitionedNorm(_world, grads, ref _normTime);
        if (ModelStates.ClipFactor(norm, _maxGradNorm) is { } factor)
        {
            using Scalar c = factor;                       // held, not an implicit temporary (see AdamW.Update)
            foreach (var g in grads) g.mul_(c);            // in place, as stage 0 clips (see PartitionedStates)
        }
        Optimizer.Update(lr, grads);
        _policy.ClearGradient();
        return norm;
    }

    /// <summary>The policy's whole weights in its parameters (a collective; the reference is never saved or loaded).</summary>
    public IDisposable WholeWeights() => _policy.Whole();

    /// <summary>The policy's whole weights on world rank 0 only (saving).</summary>
    public IDisposable WholeWeightsOnMain() => _policy.WholeOn(0);

    public void Dispose()
    {
        Optimizer.Dispose();
        foreach (var w in _weights) w.Dispose();
        _policy.Dispose();
        _reference?.Dispose();
    }
}
