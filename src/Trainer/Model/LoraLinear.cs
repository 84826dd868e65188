using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// A frozen linear layer plus a trainable low-rank update, as PEFT's <c>lora.Linear</c>:
/// y = x·Wᵀ + b + (dropout(x)·Aᵀ)·Bᵀ · alpha/r, with A (r × in) kaiming-uniform and B (out × r) zero,
/// so the wrapped layer starts out exactly equal to the base layer.
/// The base tensors keep their names (<c>q_proj.weight</c>, <c>q_proj.bias</c>) so HF checkpoints still
/// load into a wrapped model; the adapters are <c>q_proj.lora_A.weight</c> / <c>q_proj.lora_B.weight</c>.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private Parameter weight;
    private Parameter? bias;
    private readonly Linear lora_A;
    private readonly Linear lora_B;
    private readonly double scaling;
    private readonly double dropout;
    private readonly DropoutRandom random;

    public LoraLinear(Linear baseLayer, int rank, double alpha, double dropout, Generator initGenerator, DropoutRandom random)
        : base(nameof(LoraLinear))
    {
        weight = baseLayer.weight!;
        bias = baseLayer.bias;
        weight.requires_grad_(false);
        bias?.requires_grad_(false);
        var outFeatures = weight.shape[0];
        var inFeatures = weight.shape[1];
        // PEFT: kaiming_uniform_(a=√5) on A, i.e. U(−1/√in, 1/√in); drawn in float32 from a seeded
        // generator so every replica (rank) starts from the same adapter.
        var bound = 1.0 / Math.Sqrt(inFeatures);
        var a = empty(rank, inFeatures, dtype: ScalarType.Float32).uniform_(-bound, bound, initGenerator);
        lora_A = nn.Linear(new Parameter(a.to(weight.dtype, weight.device)), null);
        lora_B = nn.Linear(new Parameter(zeros(outFeatures, rank, dtype: weight.dtype, device: weight.device)), null);
        scaling = alpha / rank;
        this.dropout = dropout;
        this.random = random;
        RegisterComponents();
    }

    public Parameter Weight => weight;
    public Parameter? Bias => bias;
    public Parameter LoraA => lora_A.weight!;
    public Parameter LoraB => lora_B.weight!;
    public double Scaling => scaling;

    /// <summary>When false the layer is exactly its frozen base (DPO's reference model under LoRA).</summary>
    public bool AdapterEnabled { get; set; } = true;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.linear(x, weight, bias);
        if (!AdapterEnabled) return y.MoveToOuterDisposeScope();
        var adapterInput = training && dropout > 0 ? random.Dropout(x, dropout) : x;
        var update = lora_B.call(lora_A.call(adapterInput));                               // (…, out)
        using Scalar scale = scaling;                                                       // held: see RmsNorm
        return (y + update * scale).MoveToOuterDisposeScope();
    }

    /// <summary>A plain Linear with W + B·A·scale (computed in float32 or better, cast to W's dtype).</summary>
    public Linear Merge()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var computeType = weight.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var delta = LoraB.to_type(computeType).matmul(LoraA.to_type(computeType)) * scaling; // (out, in)
        var merged = (weight.to_type(computeType) + delta).to_type(weight.dtype);
        var w = new Parameter(merged.MoveToOuterDisposeScope(), requires_grad: true);
        Parameter? b = bias is null ? null : new Parameter(bias.detach().clone().MoveToOuterDisposeScope(), requires_grad: true);
        return nn.Linear(w, b);
    }
}
