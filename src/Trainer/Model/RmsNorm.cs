using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// RMSNorm: x / sqrt(mean(x²) + eps) · weight. Like HF, the statistics are computed in float32 for
/// half-precision inputs (float64 stays float64), the normalised value is cast back to the input dtype,
/// and only then multiplied by the weight.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(long hiddenSize, double eps, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(hiddenSize, dtype: dtype, device: device));
        this.eps = eps;
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inputType = x.dtype;
        var statType = inputType == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var xs = x.to_type(statType);
        // Held Scalars: TorchSharp passes only their handle to native code, and a temporary one can be
        // finalized mid-call under GC pressure from other rank threads (docs/platform.md).
        using Scalar two = 2, epsilon = eps;
        var variance = xs.pow(two).mean([-1L], keepdim: true);                             // (B, T, 1)
        var normed = (xs * (variance + epsilon).rsqrt()).to_type(inputType);
        return (weight * normed).MoveToOuterDisposeScope();
    }
}
