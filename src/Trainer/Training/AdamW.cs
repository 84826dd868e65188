using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// AdamW (decoupled weight decay), PyTorch's update rule, written out so that its whole state — step,
/// moments and fp32 master weights — is ours to checkpoint and restore bit-exactly.
/// Parameters held in bf16 are updated through an fp32 master copy (mixed precision): the bf16 weights
/// are a rounding of the master, never the accumulator.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly (string Name, Tensor Param, bool Decay)[] _params;
    private readonly Tensor[] _m, _v;
    private readonly Tensor?[] _master;
    private readonly double _beta1, _beta2, _eps, _weightDecay;

    public long Step { get; private set; }

    /// <param name="parameters">Trainable parameters by name. Decay applies to matrices only (not norms or biases), as Hugging Face's Trainer does.</param>
    public AdamW(IEnumerable<(string Name, Tensor Param)> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        _params = parameters.Select(p => (p.Name, p.Param, p.Param.dim() >= 2)).ToArray();
        _beta1 = beta1; _beta2 = beta2; _eps = eps; _weightDecay = weightDecay;
        using var _ = no_grad();
        _m = _params.Select(p => zeros(p.Param.shape, ScalarType.Float32)).ToArray();
        _v = _params.Select(p => zeros(p.Param.shape, ScalarType.Float32)).ToArray();
        _master = _params.Select(p => p.Param.dtype == ScalarType.Float32 || p.Param.dtype == ScalarType.Float64
            ? null : p.Param.detach().to(ScalarType.Float32)).ToArray();
        // float64 runs (tests) keep float64 moments so the update is exact to the precision in use.
        for (int i = 0; i < _params.Length; i++)
            if (_params[i].Param.dtype == ScalarType.Float64) { _m[i] = _m[i].to(ScalarType.Float64); _v[i] = _v[i].to(ScalarType.Float64); }
    }

    public IReadOnlyList<(string Name, Tensor Param)> Parameters => _params.Select(p => (p.Name, p.Param)).ToList();

    public void Update(double lr)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Step++;
        double bc1 = 1 - Math.Pow(_beta1, Step), bc2 = 1 - Math.Pow(_beta2, Step);
        // Scalars held until the end of the update: TorchSharp passes only a Scalar's native handle, so an
        // implicit temporary (w.mul_(1 - lr·λ)) can be finalized by the GC while the op still reads it.
        using Scalar decay = 1 - lr * _weightDecay, beta1 = _beta1, oneMinusBeta1 = 1 - _beta1, beta2 = _beta2,
            oneMinusBeta2 = 1 - _beta2, sqrtBc2 = Math.Sqrt(bc2), eps = _eps, stepSize = -lr / bc1;
        for (int i = 0; i < _params.Length; i++)
        {
            var p = _params[i].Param;
            if (p.grad is null) continue;
            var w = _master[i] ?? p;                                  // the fp32 (or fp64) weights we update
            var g = p.grad.to(w.dtype);
            if (_params[i].Decay && _weightDecay != 0) w.mul_(decay);
            _m[i].mul_(beta1).add_(g, alpha: oneMinusBeta1);
            _v[i].mul_(beta2).addcmul_(g, g, value: oneMinusBeta2);
            var denom = _v[i].sqrt().div_(sqrtBc2).add_(eps);
            w.addcdiv_(_m[i], denom, value: stepSize);
            if (_master[i] is not null) p.copy_(w);                   // round the master into the bf16 weights
        }
    }

    /// <summary>State as named tensors (for a checkpoint's optimizer.safetensors).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        for (int i = 0; i < _params.Length; i++)
        {
            d[$"{_params[i].Name}.exp_avg"] = _m[i];
            d[$"{_params[i].Name}.exp_avg_sq"] = _v[i];
            if (_master[i] is { } m) d[$"{_params[i].Name}.master"] = m;
        }
        return d;
    }

    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, long step)
    {
        using var _ = no_grad();
        for (int i = 0; i < _params.Length; i++)
        {
            _m[i].copy_(Required(state, $"{_params[i].Name}.exp_avg"));
            _v[i].copy_(Required(state, $"{_params[i].Name}.exp_avg_sq"));
            if (_master[i] is { } m) m.copy_(Required(state, $"{_params[i].Name}.master"));
        }
        Step = step;
    }

    private static Tensor Required(IReadOnlyDictionary<string, Tensor> s, string key) =>
        s.TryGetValue(key, out var t) ? t : throw new InvalidDataException($"optimizer state has no '{key}' (checkpoint from a different model or finetuning_type?)");

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
        foreach (var t in _master) t?.Dispose();
    }
}
