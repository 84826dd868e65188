using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// What one AdamW slot updates: the weights of a whole parameter (<paramref name="Offset"/> 0, the tensor
/// itself) or of a contiguous run of a parameter's flat elements (a flat view into it, when ZeRO cuts the
/// flat parameter space into partitions). <paramref name="Decay"/> is the parameter's, not the view's.
/// </summary>
public sealed record AdamWSlot(string Name, long Offset, Tensor Weights, bool Decay);

/// <summary>
/// AdamW (decoupled weight decay), PyTorch's update rule, written out so that its whole state — step,
/// moments and fp32 master weights — is ours to checkpoint and restore bit-exactly.
/// Parameters held in bf16 are updated through an fp32 master copy (mixed precision): the bf16 weights
/// are a rounding of the master, never the accumulator.
/// The state is keyed by parameter name and flat offset (<c>{name}.exp_avg</c> for a whole tensor,
/// <c>{name}.exp_avg@{offset}</c> for a run of it), so a state saved by one partitioning loads into another.
/// </summary>
public sealed class AdamW : IDisposable
{
    public static readonly string[] StateKinds = ["exp_avg", "exp_avg_sq", "master"];

    private readonly AdamWSlot[] _slots;
    private readonly bool[] _whole;                 // the slot is a whole parameter (stage 0): shaped state, unsuffixed keys
    private readonly Tensor[] _m, _v;
    private readonly Tensor?[] _master;
    private readonly double _beta1, _beta2, _eps, _weightDecay;

    public long Step { get; private set; }

    /// <param name="parameters">Trainable parameters by name. Decay applies to matrices only (not norms or biases), as Hugging Face's Trainer does.</param>
    public AdamW(IEnumerable<(string Name, Tensor Param)> parameters, double beta1, double beta2, double eps, double weightDecay)
        : this(parameters.Select(p => new AdamWSlot(p.Name, 0, p.Param, p.Param.dim() >= 2)).ToArray(), whole: true, stateDevice: null, beta1, beta2, eps, weightDecay)
    {
    }

    /// <summary>Slots that are runs of parameters (a ZeRO partition); the state lives on <paramref name="stateDevice"/>
    /// (the weights' own device when null). State away from the weights' device keeps an fp32 master there, so
    /// the update never reads across devices.</summary>
    public AdamW(IReadOnlyList<AdamWSlot> slots, Device? stateDevice, double beta1, double beta2, double eps, double weightDecay)
        : this(slots, whole: false, stateDevice, beta1, beta2, eps, weightDecay)
    {
    }

    private AdamW(IReadOnlyList<AdamWSlot> slots, bool whole, Device? stateDevice, double beta1, double beta2, double eps, double weightDecay)
    {
        _slots = [.. slots];
        _whole = [.. _slots.Select(_ => whole)];
        _beta1 = beta1; _beta2 = beta2; _eps = eps; _weightDecay = weightDecay;
        using var _ = no_grad();
        // float64 runs (tests) keep float64 moments so the update is exact to the precision in use.
        ScalarType StateType(Tensor w) => w.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        Device On(Tensor w) => stateDevice ?? w.device;
        bool Away(Tensor w) => stateDevice is { } d && (d.type != w.device.type || d.index != w.device.index);
        _m = [.. _slots.Select(s => zeros(s.Weights.shape, StateType(s.Weights), On(s.Weights)))];
        _v = [.. _slots.Select(s => zeros(s.Weights.shape, StateType(s.Weights), On(s.Weights)))];
        _master = [.. _slots.Select(s => (s.Weights.dtype == ScalarType.Float32 || s.Weights.dtype == ScalarType.Float64) && !Away(s.Weights)
            ? null : s.Weights.detach().to(StateType(s.Weights), On(s.Weights)))];
    }

    public IReadOnlyList<(string Name, Tensor Param)> Parameters => _slots.Select(s => (s.Name, s.Weights)).ToList();

    /// <summary>Bytes the optimizer state holds (moments and masters), measured from its tensors.</summary>
    public long StateBytes => _m.Concat(_v).Concat(_master.OfType<Tensor>()).Sum(t => t.numel() * t.element_size());

    /// <summary>One step on the parameters' own gradients (<c>.grad</c>).</summary>
    public void Update(double lr) => Update(lr, _slots.Select(s => s.Weights.grad).ToArray());

    /// <summary>One step with one gradient per slot, shaped as its weights (null: the slot is left alone).</summary>
    public void Update(double lr, IReadOnlyList<Tensor?> grads)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Step++;
        double bc1 = 1 - Math.Pow(_beta1, Step), bc2 = 1 - Math.Pow(_beta2, Step);
        // Scalars held until the end of the update: TorchSharp passes only a Scalar's native handle, so an
        // implicit temporary (w.mul_(1 - lr·λ)) can be finalized by the GC while the op still reads it.
        using Scalar decay = 1 - lr * _weightDecay, beta1 = _beta1, oneMinusBeta1 = 1 - _beta1, beta2 = _beta2,
            oneMinusBeta2 = 1 - _beta2, sqrtBc2 = Math.Sqrt(bc2), eps = _eps, stepSize = -lr / bc1;
        for (int i = 0; i < _slots.Length; i++)
        {
            var p = _slots[i].Weights;
            if (grads[i] is not { } grad) continue;
            // Each slot's temporaries (the float32 gradient copy, the denominator) freed before the next slot's:
            // held to the end of the update they were a second copy of every gradient at the step's peak.
            using var slotScope = NewDisposeScope();
            var w = _master[i] ?? p;                                  // the fp32 (or fp64) weights we update
            var g = grad.to(w.dtype, w.device);
            if (_slots[i].Decay && _weightDecay != 0) w.mul_(decay);
            _m[i].mul_(beta1).add_(g, alpha: oneMinusBeta1);
            _v[i].mul_(beta2).addcmul_(g, g, value: oneMinusBeta2);
            var denom = _v[i].sqrt().div_(sqrtBc2).add_(eps);
            w.addcdiv_(_m[i], denom, value: stepSize);
            if (_master[i] is not null) p.copy_(w);                   // round the master into the bf16 weights
            MemoryProbe.Mark("adamw " + _slots[i].Name);
        }
    }

    /// <summary>State as named tensors (for a checkpoint's optimizer files).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        for (int i = 0; i < _slots.Length; i++)
        {
            d[Key(i, "exp_avg")] = _m[i];
            d[Key(i, "exp_avg_sq")] = _v[i];
            if (_master[i] is { } m) d[Key(i, "master")] = m;
        }
        return d;
    }

    /// <summary>Restores the state from pieces keyed as <see cref="StateDict"/> writes them, from any partitioning:
    /// each slot takes the elements it covers from whichever pieces of its parameter overlap it.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, long step)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var pieces = state.Select(kv => (Parsed: ParseKey(kv.Key), kv.Value)).Where(x => x.Parsed is not null)
            .GroupBy(x => (x.Parsed!.Value.Name, x.Parsed!.Value.Kind))
            .ToDictionary(g => g.Key, g => g.Select(x => (x.Parsed!.Value.Offset, Flat: x.Value.reshape(-1))).ToArray());
        for (int i = 0; i < _slots.Length; i++)
        {
            Fill(pieces, i, "exp_avg", _m[i]);
            Fill(pieces, i, "exp_avg_sq", _v[i]);
            if (_master[i] is { } m) Fill(pieces, i, "master", m);
        }
        Step = step;
    }

    private void Fill(Dictionary<(string, string), (long Offset, Tensor Flat)[]> pieces, int i, string kind, Tensor into)
    {
        var (name, start) = (_slots[i].Name, _slots[i].Offset);
        long end = start + into.numel(), covered = 0;
        var flat = into.view(-1);
        foreach (var (offset, piece) in pieces.GetValueOrDefault((name, kind)) ?? [])
        {
            long from = Math.Max(start, offset), to = Math.Min(end, offset + piece.numel());
            if (to <= from) continue;
            flat.narrow(0, from - start, to - from).copy_(piece.narrow(0, from - offset, to - from));
            covered += to - from;
        }
        if (covered != end - start)
            throw new InvalidDataException(covered == 0
                ? $"optimizer state has no '{Key(i, kind)}' (checkpoint from a different model or finetuning_type?)"
                : $"optimizer state covers {covered} of the {end - start} elements of '{Key(i, kind)}' (a checkpoint's optimizer files are missing?)");
    }

    private string Key(int i, string kind) => _whole[i] ? $"{_slots[i].Name}.{kind}" : $"{_slots[i].Name}.{kind}@{_slots[i].Offset}";

    /// <summary>"{name}.{kind}" or "{name}.{kind}@{offset}"; null for keys that are not optimizer state (the RNG state).</summary>
    private static (string Name, string Kind, long Offset)? ParseKey(string key)
    {
        long offset = 0;
        int at = key.LastIndexOf('@');
        if (at >= 0 && long.TryParse(key[(at + 1)..], out offset)) key = key[..at];
        foreach (var kind in StateKinds)
            if (key.EndsWith("." + kind, StringComparison.Ordinal)) return (key[..^(kind.Length + 1)], kind, offset);
        return null;
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
        foreach (var t in _master) t?.Dispose();
    }
}
