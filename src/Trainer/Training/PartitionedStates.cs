using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// ZeRO stages 1 and 2 over the whole world (SP × DP ranks): the flat trainable space is cut into W
/// partitions (<see cref="FlatPartition"/>) and rank r keeps AdamW's moments and fp32 masters for
/// partition r only, updates those weights, and the updated weights are all-gathered so every replica
/// holds the whole model again before the next forward.
/// <list type="bullet">
/// <item>Stage 1: gradients are all-reduced as in stage 0 (same bits), the norm is stage 0's (same bits),
/// and each rank reads its partition's share of the summed gradient.</item>
/// <item>Stage 2: gradients are reduce-scattered instead (each element summed in the same rank order as
/// the all-reduce, so the partition's gradient has stage 0's bits) and the full gradients are freed right
/// after; the norm is the square root of an all-reduce of per-rank partial squared sums — the same
/// terms grouped differently, so it (and the clip factor) can differ from stage 0 in the last bits.</item>
/// </list>
/// Collectives run over flat windows of <see cref="BucketElements"/>, so staging stays bounded whatever the
/// model's size. The gradients are summed once per optimizer step, after the last micro-batch's
/// backward, so during backward a rank still holds a whole gradient (stage 2 frees it at the step).
/// </summary>
public sealed class PartitionedStates : IModelStates
{
    /// <summary>Flat elements per collective call (16 MiB of float32).</summary>
    public const long BucketElements = 1L << 22;

    private readonly ICollectives _world;
    private readonly FlatPartition _part;
    private readonly Tensor[] _params;
    private readonly FlatPartition.Run[] _mine;            // the runs that make up this rank's partition, one AdamW slot each
    private readonly Tensor[] _weights;                    // flat views of the parameters, one per run (owned: disposed here)
    private readonly double _maxGradNorm;
    private readonly long _gradientBytes;

    public PartitionedStates(int zeroStage, ICollectives world, IReadOnlyList<(string Name, Tensor Param)> trainable, JobSpec spec)
    {
        if (trainable.Select(p => p.Param.dtype).Distinct().Count() > 1)
            throw new NotSupportedException($"zero_stage {zeroStage}: the trainable parameters mix dtypes ({string.Join(", ", trainable.Select(p => p.Param.dtype).Distinct())}); one dtype is needed to gather them flat");
        (ZeroStage, _world, _maxGradNorm) = (zeroStage, world, spec.MaxGradNorm);
        _part = new FlatPartition(trainable, world.WorldSize, world.Rank);
        _params = [.. trainable.Select(p => p.Param)];
        _mine = [.. _part.Runs(_part.Start, _part.End)];
        using (no_grad())
            _weights = [.. _mine.Select(r => FlatWeights(r).DetachFromDisposeScope())];
        var device = _params.Length > 0 ? ModelStates.StateDevice(_params[0]) : CPU;
        Optimizer = new AdamW(_mine.Select((r, i) => new AdamWSlot(trainable[r.Index].Name, r.Offset, _weights[i], _params[r.Index].dim() >= 2)).ToArray(),
            device, spec.AdamBeta1, spec.AdamBeta2, spec.AdamEpsilon, spec.WeightDecay);
        _gradientBytes = ZeroStage == 2 ? _part.Length * ElementSize : ModelStates.BytesOf(_params);
    }

    public int ZeroStage { get; }
    public long Step => Optimizer.Step;
    public AdamW Optimizer { get; }
    public (long Start, long End) Range => (_part.Start, _part.End);
    public bool Partitioned => true;
    public bool CaptureNextGradient { get; set; }
    public double[]? CapturedGradient { get; private set; }
    public ModelStateBytes Bytes => new(ModelStates.BytesOf(_params), _gradientBytes, Optimizer.StateBytes);
    public TimeSpan CommunicationTime => _communication;
    private TimeSpan _communication;

    private long ElementSize => _params.Length > 0 ? _params[0].element_size() : 4;

    public double Update(double lr)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor[] grads;                                    // this rank's share of the summed gradient, one per run
        double norm;
        if (ZeroStage == 1)
        {
            ModelStates.Timed(ref _communication, () => ModelStates.AllReduceGradients(_world, _params));
            if (CaptureNextGradient) (CapturedGradient, CaptureNextGradient) = (ModelStates.ToDoubles(_params.Select(p => p.grad!)), false);
            norm = Math.Sqrt(_params.Sum(p => ModelStates.SquaredSum(p.grad!)));
            grads = [.. _mine.Select(r => _params[r.Index].grad!.reshape(-1).narrow(0, r.Offset, r.Length))];
        }
        else
        {
            Tensor partition = null!;
            ModelStates.Timed(ref _communication, () => partition = ReduceScatterGradients());   // (partition length)
            foreach (var p in _params) p.grad = null;      // the whole gradient is not needed any more
            if (CaptureNextGradient) (CapturedGradient, CaptureNextGradient) = (ModelStates.ToDoubles([_world.AllGather(partition, 0)]), false);
            grads = [.. _mine.Select(r => partition.narrow(0, r.Flat - _part.Start, r.Length))];
            norm = ModelStates.PartitionedNorm(_world, grads, ref _communication);
        }
        if (ModelStates.ClipFactor(norm, _maxGradNorm) is { } factor)
        {
            using Scalar c = factor;                       // held, not an implicit temporary (see AdamW.Update)
            // In place, as stage 0 clips: for bf16, out-of-place mul(Scalar) rounds differently from mul_(Scalar)
            // (measured: 36,240 of tiny-llama's 1,000,576 weights differed after one step).
            foreach (var g in grads) g.mul_(c);
        }
        Optimizer.Update(lr, grads);
        ModelStates.Timed(ref _communication, GatherWeights);
        return norm;
    }

    /// <summary>The summed gradient of this rank's partition, bucket by bucket over the flat space.</summary>
    private Tensor ReduceScatterGradients()
    {
        foreach (var p in _params) p.grad ??= zeros_like(p);
        var result = empty(_part.Length, _params[0].grad!.dtype);
        for (long from = 0; from < _part.Total; from += BucketElements)
        {
            using var bucket = NewDisposeScope();
            long to = Math.Min(_part.Total, from + BucketElements);
            var input = cat(_part.Runs(from, to).Select(r => _params[r.Index].grad!.reshape(-1).narrow(0, r.Offset, r.Length)).ToArray());   // (to − from)
            var mine = _world.ReduceScatterSum(input, _part.CountsIn(from, to));
            if (mine.numel() > 0) result.narrow(0, Math.Max(from, _part.Start) - _part.Start, mine.numel()).copy_(mine);
        }
        return result;
    }

    /// <summary>Every rank's updated partition into every replica, bucket by bucket: the partitions are
    /// contiguous and in rank order, so the gathered pieces of a window are the window.</summary>
    private void GatherWeights()
    {
        for (long from = 0; from < _part.Total; from += BucketElements)
        {
            using var bucket = NewDisposeScope();
            long to = Math.Min(_part.Total, from + BucketElements);
            long a = Math.Max(from, _part.Start), b = Math.Min(to, _part.End);
            var mine = b > a ? cat(_part.Runs(a, b).Select(FlatWeights).ToArray()) : empty(0, _params[0].dtype);
            var window = _world.AllGather(mine, 0);                                                    // (to − from)
            foreach (var r in _part.Runs(from, to))
                FlatWeights(r).copy_(window.narrow(0, r.Flat - from, r.Length));
        }
    }

    /// <summary>A run's weights as a flat view into the parameter (writes go to the parameter).</summary>
    private Tensor FlatWeights(FlatPartition.Run r) => _params[r.Index].detach().view(-1).narrow(0, r.Offset, r.Length);

    public void Dispose()
    {
        Optimizer.Dispose();
        foreach (var w in _weights) w.Dispose();
    }
}
