using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>Bytes of model state one rank holds between steps, measured from its tensors: the trainable
/// weights, their gradients (stage 2: this rank's partition only) and the optimizer state.</summary>
public sealed record ModelStateBytes(long Weights, long Gradients, long Optimizer)
{
    public long Total => Weights + Gradients + Optimizer;
}

/// <summary>
/// Where the model states live and how an optimizer step runs: after the last micro-batch's backward,
/// one call sums the gradients over the whole world (sequence shards and data-parallel replicas, in rank
/// order), clips them by the global norm and updates the weights. ZeRO's stages are implementations:
/// 0 replicates everything (<see cref="ReplicatedStates"/>); 1 and 2 partition the optimizer state (and, 2,
/// the summed gradients) over the world (<see cref="PartitionedStates"/>); 3 the weights too (<see cref="Stage3States"/>).
/// </summary>
public interface IModelStates : IDisposable
{
    int ZeroStage { get; }

    /// <summary>Optimizer steps taken.</summary>
    long Step { get; }

    /// <summary>Sums gradients over the world, clips, updates (a collective). Returns the global norm before clipping.</summary>
    double Update(double lr);

    /// <summary>This rank's optimizer (stage 0: all of it; otherwise its partition's slots).</summary>
    AdamW Optimizer { get; }

    /// <summary>The flat elements of the trainable space whose optimizer state this rank holds.</summary>
    (long Start, long End) Range { get; }

    /// <summary>Whether every rank holds its own part of the optimizer state (and saves it); otherwise the main rank saves it all.</summary>
    bool Partitioned { get; }

    ModelStateBytes Bytes { get; }

    /// <summary>Wall time spent in this object's collectives so far (gradient sum, norm, weight gather).</summary>
    TimeSpan CommunicationTime { get; }

    /// <summary>When set, the next update keeps a float64 copy of the summed, unclipped gradient (parity checks; every rank sets it).</summary>
    bool CaptureNextGradient { get; set; }
    double[]? CapturedGradient { get; }

    /// <summary>The whole model's weights in its parameters until disposed, for saving, loading (what is written is
    /// kept) or reading them. A collective under stage 3, which gathers them; the other stages hold them already.</summary>
    IDisposable WholeWeights() => NoScope.Instance;

    /// <summary>The whole weights in the main rank's parameters until disposed, for saving them there (a collective under
    /// stage 3, which gathers them on the main rank only; the other stages hold them already). Other ranks must not read
    /// their parameters meanwhile.</summary>
    IDisposable WholeWeightsOnMain() => WholeWeights();

    private sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }
}

public static class ModelStates
{
    public static readonly int[] Stages = [0, 1, 2, 3];

    /// <summary>The states of <paramref name="model"/>'s trainable parameters; stage 3 partitions the frozen
    /// <paramref name="reference"/> copy (DPO) too.</summary>
    public static IModelStates Create(int zeroStage, ICollectives world, CausalLM model, CausalLM? reference, JobSpec spec)
    {
        IReadOnlyList<(string Name, Tensor Param)> Trainable() =>
            [.. model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter))];
        return zeroStage switch
        {
            0 => new ReplicatedStates(world, Trainable(), spec),
            1 or 2 => new PartitionedStates(zeroStage, world, Trainable(), spec),
            3 => new Stage3States(world, model, reference, spec),
            _ => throw new NotSupportedException($"zero_stage {zeroStage}: stages {string.Join(", ", Stages)} are built"),
        };
    }

    /// <summary>The global norm from per-rank partitions of the summed gradient: each rank's float64 squared
    /// sum, all-reduced in rank order (the same value on every rank).</summary>
    internal static double PartitionedNorm(ICollectives world, IEnumerable<Tensor> grads, ref TimeSpan communication)
    {
        using var squares = tensor(new[] { grads.Sum(SquaredSum) }, ScalarType.Float64);
        Timed(ref communication, () => world.AllReduceSum(squares));
        return Math.Sqrt(squares.item<double>());
    }

    /// <summary>
    /// The one decision about where a partition's optimizer state (moments, fp32 masters) lives. On an
    /// accelerator, offload to host memory is this line returning <c>CPU</c> (AdamW then keeps an fp32
    /// master there and moves gradients over and weights back). On CPU the state already is in host
    /// memory: there is nothing to offload.
    /// </summary>
    public static Device StateDevice(Tensor weights) => weights.device;

    /// <summary>A tensor's float64 sum of squares (the global norm adds these per tensor, in the same order on every rank).
    /// TorchSharp's square() is pow with an implicit Scalar temporary that the GC can finalize mid-call (seen
    /// here: "INTERNAL ASSERT FAILED at Scalar.h" in pow under load), so the exponent is held.
    /// Summed a slice at a time: a float64 copy of a whole embedding's gradient is 1 GB on a 0.5B model, and one
    /// of every gradient at once (what a single expression under the step's scope kept) was 7.4 GB.</summary>
    internal static double SquaredSum(Tensor grad)
    {
        const long slice = 1 << 24;
        using Scalar two = 2;
        using var outer = NewDisposeScope();
        var flat = grad.flatten();
        double sum = 0;
        for (long start = 0; start < flat.shape[0]; start += slice)
        {
            using var scope = NewDisposeScope();
            sum += flat.narrow(0, start, Math.Min(slice, flat.shape[0] - start)).to(ScalarType.Float64).pow(two).sum().item<double>();
        }
        return sum;
    }

    internal static double[] ToDoubles(IEnumerable<Tensor> parts)
    {
        using var scope = NewDisposeScope();
        return cat(parts.Select(g => g.flatten().to(ScalarType.Float64)).ToArray()).data<double>().ToArray();
    }

    /// <summary>The clip factor for a norm, or null when no clipping applies.</summary>
    internal static double? ClipFactor(double norm, double maxNorm) => maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : null;

    /// <summary>Sums every trainable gradient over the world in one flat all-reduce (rank order), in place. Missing gradients become zeros.</summary>
    internal static void AllReduceGradients(ICollectives world, Tensor[] trainable)
    {
        foreach (var p in trainable) p.grad ??= zeros_like(p);
        if (world.WorldSize == 1) return;
        var summed = cat(trainable.Select(p => p.grad!.flatten()).ToArray());
        world.AllReduceSum(summed);
        long offset = 0;
        foreach (var p in trainable)
        {
            long n = p.numel();
            p.grad!.copy_(summed.narrow(0, offset, n).view(p.shape));
            offset += n;
        }
    }

    /// <summary>Runs a collective, adding its wall time to <paramref name="total"/>.</summary>
    internal static void Timed(ref TimeSpan total, Action collective)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        collective();
        total += System.Diagnostics.Stopwatch.GetElapsedTime(start);
    }

    internal static long BytesOf(IEnumerable<Tensor> tensors) => tensors.Sum(t => t.numel() * t.element_size());
}

/// <summary>ZeRO stage 0: every rank holds the whole optimizer state and the whole summed gradient (the
/// behaviour before ZeRO, kept bit for bit).</summary>
public sealed class ReplicatedStates : IModelStates
{
    private readonly ICollectives _world;
    private readonly Tensor[] _trainable;
    private readonly double _maxGradNorm;

    public ReplicatedStates(ICollectives world, IReadOnlyList<(string Name, Tensor Param)> trainable, JobSpec spec)
    {
        (_world, _trainable, _maxGradNorm) = (world, [.. trainable.Select(p => p.Param)], spec.MaxGradNorm);
        Optimizer = new AdamW(trainable, spec.AdamBeta1, spec.AdamBeta2, spec.AdamEpsilon, spec.WeightDecay);
        Range = (0, _trainable.Sum(p => p.numel()));
    }

    public int ZeroStage => 0;
    public long Step => Optimizer.Step;
    public AdamW Optimizer { get; }
    public (long Start, long End) Range { get; }
    public bool Partitioned => false;
    public bool CaptureNextGradient { get; set; }
    public double[]? CapturedGradient { get; private set; }

    public ModelStateBytes Bytes => new(ModelStates.BytesOf(_trainable), ModelStates.BytesOf(_trainable), Optimizer.StateBytes);
    public TimeSpan CommunicationTime => _communication;
    private TimeSpan _communication;

    public double Update(double lr)
    {
        using (NewDisposeScope())
        using (no_grad())
        {
            MemoryProbe.Mark("optimizer_step");
            ModelStates.Timed(ref _communication, () => ModelStates.AllReduceGradients(_world, _trainable));
            MemoryProbe.Mark("gradients_summed");
            if (CaptureNextGradient) (CapturedGradient, CaptureNextGradient) = (ModelStates.ToDoubles(_trainable.Select(p => p.grad!)), false);
            double norm = Math.Sqrt(_trainable.Sum(p => ModelStates.SquaredSum(p.grad!)));
            if (ModelStates.ClipFactor(norm, _maxGradNorm) is { } factor)
            {
                using Scalar c = factor;                      // held, not an implicit temporary (see AdamW.Update)
                foreach (var p in _trainable) p.grad!.mul_(c);
            }
            MemoryProbe.Mark("clipped");
            Optimizer.Update(lr);
            MemoryProbe.Mark("optimizer_step_end");
            return norm;
        }
    }

    public void Dispose() => Optimizer.Dispose();
}
