using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Parallel;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// ZeRO stage 3's parameters: every parameter of a model (frozen LoRA base weights too) as one flat space in
/// named_parameters order, cut into W contiguous partitions (<see cref="FlatPartition"/>, as stages 1 and 2
/// cut the trainable space). Rank r keeps partition r in <see cref="Shard"/> (the compute dtype); the
/// model's parameters hold no storage except while their unit is gathered. A unit (the embedding, a layer,
/// the final norm, lm_head) is a contiguous window of the flat space, so gathering it is one all-gather of
/// each rank's piece of the window (most ranks' pieces are empty: a partition spans whole layers), and its
/// gradient is one reduce-scatter over the trainable elements of the window, in rank order — each element's
/// sum has the bits of stage 0's all-reduce.
/// The trainable elements of rank r's partition are a contiguous run of the trainable space (removing frozen
/// elements keeps order), so <see cref="Trainable"/> is a partition of it like stage 2's: its optimizer
/// files and AdamW keys are stage 2's, and checkpoints move between the stages.
/// </summary>
public sealed class ShardedParameters : IParameterGather, IDisposable
{
    private readonly ICollectives _world;
    private readonly CausalLM _model;
    private readonly Parameter[] _params;
    private readonly long[][] _shapes;                     // each parameter's shape (its tensor is empty between uses)
    private readonly Dictionary<nn.Module, Unit> _units = new(ReferenceEqualityComparer.Instance);
    private readonly Tensor _empty;                        // the storage a released parameter points at
    private readonly Tensor? _gradient;                    // (trainable partition) summed gradients, when gradients are kept

    /// <summary>A unit's parameters (indices into the flat space's parameters), its window of the flat space and
    /// of the trainable space, and its gathered buffer while in use.</summary>
    private sealed class Unit(int[] indices, long from, long to, long trainableFrom, long trainableTo)
    {
        public int[] Indices { get; } = indices;
        public long From { get; } = from;
        public long To { get; } = to;
        public long TrainableFrom { get; } = trainableFrom;
        public long TrainableTo { get; } = trainableTo;
        public Tensor? Gathered { get; set; }
    }

    /// <param name="keepGradients">Whether trainable gradients are reduce-scattered into <see cref="Gradient"/> (the policy; not a frozen reference).</param>
    public ShardedParameters(CausalLM model, ICollectives world, bool keepGradients)
    {
        (_model, _world) = (model, world);
        var named = model.named_parameters().Select(p => (p.name, p.parameter)).ToArray();
        _params = [.. named.Select(p => p.parameter)];
        if (_params.Select(p => p.dtype).Distinct().Count() > 1)
            throw new NotSupportedException($"zero_stage 3: the parameters mix dtypes ({string.Join(", ", _params.Select(p => p.dtype).Distinct())}); one dtype is needed to gather them flat");
        _shapes = [.. _params.Select(p => p.shape)];
        var sizes = _params.Select(p => p.numel()).ToArray();
        var all = named.Select(p => (p.name, (Tensor)p.parameter)).ToArray();
        Flat = new FlatPartition(all, sizes, world.WorldSize, world.Rank);

        // The trainable space, cut where the flat space is cut.
        var trainableIndex = Enumerable.Range(0, _params.Length).Where(i => _params[i].requires_grad).ToArray();
        long TrainableIn((long Start, long End) range) => Flat.Runs(range.Start, range.End).Where(r => _params[r.Index].requires_grad).Sum(r => r.Length);
        Trainable = new FlatPartition([.. trainableIndex.Select(i => all[i])], [.. trainableIndex.Select(i => sizes[i])],
            [.. Enumerable.Range(0, world.WorldSize).Select(r => TrainableIn(Flat.RangeOf(r)))], world.Rank);
        var trainableStart = new long[_params.Length];
        for (int k = 0; k < trainableIndex.Length; k++) trainableStart[trainableIndex[k]] = Trainable.StartOf(k);

        var index = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < _params.Length; i++) index[_params[i]] = i;
        foreach (var unit in model.Units)
        {
            var ids = unit.parameters().Select(p => index[p]).ToArray();
            if (ids.Length == 0 || ids.Zip(ids.Skip(1), (a, b) => b - a).Any(d => d != 1))
                throw new InvalidOperationException($"zero_stage 3: the parameters of {unit.GetName()} are not one contiguous run of named_parameters");
            var trainable = ids.Where(i => _params[i].requires_grad).ToArray();
            long tFrom = trainable.Length > 0 ? trainableStart[trainable[0]] : 0;
            _units[unit] = new Unit(ids, Flat.StartOf(ids[0]), Flat.StartOf(ids[^1]) + sizes[ids[^1]], tFrom, tFrom + trainable.Sum(i => sizes[i]));
        }
        if (_units.Values.Sum(u => u.Indices.Length) != _params.Length)
            throw new InvalidOperationException("zero_stage 3: some parameters belong to no unit of the model (embedding, layers, norm, lm_head)");

        using var _ = no_grad();
        var dtype = _params.Length > 0 ? _params[0].dtype : ScalarType.Float32;
        var device = _params.Length > 0 ? _params[0].device : CPU;
        Shard = empty(Flat.Length, dtype, device).DetachFromDisposeScope();
        // In a scope: each detach() is a tensor of its own on the parameter's storage, and left to the garbage
        // collector these kept the whole replica alive after set_ below (measured: +383 MiB per rank on the 100M shape).
        using (NewDisposeScope())
            foreach (var r in Flat.Runs(Flat.Start, Flat.End))
                Shard.narrow(0, r.Flat - Flat.Start, r.Length).copy_(_params[r.Index].detach().reshape(-1).narrow(0, r.Offset, r.Length));
        _empty = empty(0, dtype, device).DetachFromDisposeScope();
        foreach (var p in _params) p.set_(_empty);          // from here on the replica holds 1/W of the weights
        _gradient = keepGradients ? zeros(Trainable.Length, dtype, device).DetachFromDisposeScope() : null;
        model.ParameterGather = this;
        // The replica was built whole (the loader fills full tensors); give the freed storage back to the system
        // rather than leave it in the allocator's arenas.
        NativeMemory.Trim();
    }

    /// <summary>The whole parameter space and this rank's partition of it.</summary>
    public FlatPartition Flat { get; }

    /// <summary>The trainable space, cut where <see cref="Flat"/> is cut: this rank's optimizer state and gradients.</summary>
    public FlatPartition Trainable { get; }

    /// <summary>(flat partition) this rank's weights, in the compute dtype.</summary>
    public Tensor Shard { get; }

    /// <summary>(trainable partition) this rank's summed gradients since the last <see cref="ClearGradient"/>.</summary>
    public Tensor Gradient => _gradient ?? throw new InvalidOperationException("these parameters keep no gradients");

    /// <summary>Wall time in the gathers and reduce-scatters so far.</summary>
    public TimeSpan CommunicationTime => _communication;
    private TimeSpan _communication;

    /// <summary>This rank's weights of a trainable run (a view into <see cref="Shard"/>, for AdamW).</summary>
    public Tensor WeightsOf(FlatPartition.Run trainableRun)
    {
        var p = Trainable.Parameters[trainableRun.Index].Param;
        int i = Array.FindIndex(_params, q => ReferenceEquals(q, p));
        long flat = Flat.StartOf(i) + trainableRun.Offset;
        return Shard.narrow(0, flat - Flat.Start, trainableRun.Length);
    }

    /// <summary>Whether a trainable parameter is a matrix (AdamW decays those), read from its shape as built.</summary>
    public bool IsMatrix(int trainableIndex) =>
        _shapes[Array.FindIndex(_params, q => ReferenceEquals(q, Trainable.Parameters[trainableIndex].Param))].Length >= 2;

    public void Gather(nn.Module unit)
    {
        var u = _units[unit];
        if (u.Gathered is not null) throw new InvalidOperationException($"zero_stage 3: {unit.GetName()} is gathered twice");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (from, length) = Overlap(u, _world.Rank);
        var mine = Shard.narrow(0, from - Flat.Start, length);
        Tensor window = null!;
        ModelStates.Timed(ref _communication, () => window = _world.AllGather(mine, 0));       // (u.To − u.From)
        Install(u, window);
    }

    /// <summary>Points the unit's parameters into its gathered window (u.To − u.From) and keeps the window until released.</summary>
    private void Install(Unit u, Tensor window)
    {
        foreach (var i in u.Indices)
            _params[i].set_(window.narrow(0, Flat.StartOf(i) - u.From, Flat.Sizes[i]).view(_shapes[i]));
        u.Gathered = window.DetachFromDisposeScope();
    }

    public void Release(nn.Module unit)
    {
        var u = _units[unit];
        using (no_grad())
            foreach (var i in u.Indices) _params[i].set_(_empty);
        u.Gathered?.Dispose();
        u.Gathered = null;
    }

    public void ReduceScatter(nn.Module unit, IReadOnlyList<Tensor?> grads)
    {
        var u = _units[unit];
        var trainable = u.Indices.Where(i => _params[i].requires_grad).ToArray();
        if (grads.Count != trainable.Length) throw new ArgumentException($"{grads.Count} gradients for {trainable.Length} trainable parameters of {unit.GetName()}");
        if (_gradient is null) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var flat = trainable.Select((p, k) => (grads[k] ?? zeros(_shapes[p], _params[p].dtype)).reshape(-1)).ToArray();
        // One parameter (the embedding, the LM head): its gradient itself, not a (V·H) copy of it beside it.
        var input = flat.Length == 1 ? flat[0] : cat(flat);                                   // (unit's trainable elements)
        Tensor mine = null!;
        ModelStates.Timed(ref _communication, () => mine = _world.ReduceScatterSum(input, Trainable.CountsIn(u.TrainableFrom, u.TrainableTo)));
        if (mine.numel() > 0) _gradient.narrow(0, Math.Max(u.TrainableFrom, Trainable.Start) - Trainable.Start, mine.numel()).add_(mine);
    }

    public void ClearGradient() => _gradient?.zero_();

    /// <summary>
    /// Every unit gathered until disposed (a collective): the whole model in its parameters, for saving,
    /// loading or reading them. On dispose this rank's partition is read back from the parameters (a load
    /// keeps what it wrote) and the storage is released.
    /// </summary>
    public IDisposable Whole()
    {
        foreach (var unit in _model.Units.Where(u => _units[u].Gathered is null)) Gather(unit);
        return new WholeScope(this);
    }

    /// <summary>
    /// Every unit gathered on <paramref name="root"/> only, until disposed (a collective): for saving, where only the
    /// main rank writes the consolidated model. The other ranks send it their partition one unit at a time and hold
    /// nothing more than before — gathering the whole model on every rank (<see cref="Whole"/>) cost each rank a
    /// full copy of the weights at every save. Nothing is read back: saving changes no weight.
    /// </summary>
    public IDisposable WholeOn(int root)
    {
        using var _ = no_grad();
        foreach (var unit in _model.Units)
        {
            var u = _units[unit];
            if (u.Gathered is not null) throw new InvalidOperationException($"zero_stage 3: {unit.GetName()} is gathered already");
            using var scope = NewDisposeScope();
            Tensor? window = null;
            ModelStates.Timed(ref _communication, () => window = GatherUnitOn(u, root));
            if (window is not null) Install(u, window);
        }
        return new ReleaseScope(this);
    }

    /// <summary>(u.To − u.From) on <paramref name="root"/>, from each rank's overlap with the unit in rank order; null elsewhere.</summary>
    private Tensor? GatherUnitOn(Unit u, int root)
    {
        const int tag = 7301;                                  // no other traffic runs during a save
        if (_world.Rank != root)
        {
            var (from, length) = Overlap(u, _world.Rank);
            if (length > 0) _world.Send(Shard.narrow(0, from - Flat.Start, length), root, tag);
            return null;
        }
        var pieces = new List<Tensor>();
        for (int r = 0; r < _world.WorldSize; r++)
        {
            var (from, length) = Overlap(u, r);
            if (length == 0) continue;
            pieces.Add(r == root ? Shard.narrow(0, from - Flat.Start, length) : _world.Recv(r, tag));
        }
        return cat(pieces.ToArray());
    }

    /// <summary>Where rank <paramref name="rank"/>'s partition meets the unit: its first flat index (clamped into the
    /// partition when they do not meet) and how many elements they share.</summary>
    private (long From, long Length) Overlap(Unit u, int rank)
    {
        var (start, end) = Flat.RangeOf(rank);
        long a = Math.Max(u.From, start), b = Math.Min(u.To, end);
        return (Math.Min(a, end), Math.Max(0, b - a));
    }

    private sealed class ReleaseScope(ShardedParameters owner) : IDisposable
    {
        public void Dispose()
        {
            foreach (var unit in owner._model.Units) owner.Release(unit);
        }
    }

    private sealed class WholeScope(ShardedParameters owner) : IDisposable
    {
        public void Dispose()
        {
            using (no_grad())
                foreach (var r in owner.Flat.Runs(owner.Flat.Start, owner.Flat.End))
                    owner.Shard.narrow(0, r.Flat - owner.Flat.Start, r.Length).copy_(owner._params[r.Index].detach().reshape(-1).narrow(0, r.Offset, r.Length));
            foreach (var unit in owner._model.Units) owner.Release(unit);
        }
    }

    public void Dispose()
    {
        _model.ParameterGather = null;
        Shard.Dispose();
        _gradient?.Dispose();
        _empty.Dispose();
    }
}
