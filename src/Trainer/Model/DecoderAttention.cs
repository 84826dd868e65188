using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Self-attention block of a Llama/Mistral/Qwen2/Qwen3 layer: q/k/v projections (bias for Qwen2, and
/// where attention_bias says so), for Qwen3 an RMSNorm over each head's q and k, RoPE from the caller's
/// position tables, the causal core through <see cref="IAttention"/> (which receives
/// un-repeated k/v: B, Hkv, T, D), and the output projection.
/// </summary>
public sealed class DecoderAttention : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> q_proj;
    private nn.Module<Tensor, Tensor> k_proj;
    private nn.Module<Tensor, Tensor> v_proj;
    private nn.Module<Tensor, Tensor> o_proj;
    private readonly RmsNorm? q_norm;                                                      // Qwen3 only
    private readonly RmsNorm? k_norm;
    private readonly int numHeads;
    private readonly int numKvHeads;
    private readonly int headDim;

    public static readonly string[] ProjectionNames = ["q_proj", "k_proj", "v_proj", "o_proj"];

    public DecoderAttention(ModelConfig cfg, IAttention attention, ScalarType dtype, Device? device)
        : base(nameof(DecoderAttention))
    {
        numHeads = cfg.NumAttentionHeads;
        numKvHeads = cfg.KeyValueHeads;
        headDim = cfg.HeadDim;
        if (numHeads % numKvHeads != 0)
            throw new ArgumentException($"num_attention_heads ({numHeads}) must be a multiple of num_key_value_heads ({numKvHeads}).");
        q_proj = Projections.Linear(cfg.HiddenSize, numHeads * headDim, cfg.QkvBias, dtype, device);
        k_proj = Projections.Linear(cfg.HiddenSize, numKvHeads * headDim, cfg.QkvBias, dtype, device);
        v_proj = Projections.Linear(cfg.HiddenSize, numKvHeads * headDim, cfg.QkvBias, dtype, device);
        o_proj = Projections.Linear(numHeads * headDim, cfg.HiddenSize, cfg.OutputBias, dtype, device);
        if (cfg.QkNorm)
        {
            q_norm = new RmsNorm(headDim, cfg.RmsNormEps, dtype, device);
            k_norm = new RmsNorm(headDim, cfg.RmsNormEps, dtype, device);
        }
        Attention = attention;
        RegisterComponents();
    }

    /// <summary>The causal core; replaced by ring / Ulysses attention under sequence parallelism.</summary>
    public IAttention Attention { get; set; }

    /// <param name="x">(B, T, H) normalised hidden states.</param>
    /// <param name="cos">(B, 1, T, D) from <see cref="Rotary.CosSin"/>.</param>
    /// <param name="sin">(B, 1, T, D).</param>
    public override Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var b = x.shape[0];
        var t = x.shape[1];
        var q = q_proj.call(x).view(b, t, numHeads, headDim);                              // (B, T, Hq, D)
        var k = k_proj.call(x).view(b, t, numKvHeads, headDim);                            // (B, T, Hkv, D)
        if (q_norm is not null) (q, k) = (q_norm.call(q), k_norm!.call(k));                // per head, over D
        q = q.transpose(1, 2);                                                             // (B, Hq, T, D)
        k = k.transpose(1, 2);                                                             // (B, Hkv, T, D)
        var v = v_proj.call(x).view(b, t, numKvHeads, headDim).transpose(1, 2);            // (B, Hkv, T, D)
        q = Rotary.Apply(q, cos, sin);
        k = Rotary.Apply(k, cos, sin);
        var y = Attention.Forward(q, k, v.contiguous());                                   // (B, Hq, T, D)
        y = y.transpose(1, 2).reshape(b, t, numHeads * headDim);                           // (B, T, Hq·D)
        return o_proj.call(y).MoveToOuterDisposeScope();                                   // (B, T, H)
    }

    public nn.Module<Tensor, Tensor> GetProjection(string name) => name switch
    {
        "q_proj" => q_proj,
        "k_proj" => k_proj,
        "v_proj" => v_proj,
        "o_proj" => o_proj,
        _ => throw new ArgumentException($"DecoderAttention has no projection '{name}'."),
    };

    public void SetProjection(string name, nn.Module<Tensor, Tensor> module)
    {
        switch (name)
        {
            case "q_proj": q_proj = module; break;
            case "k_proj": k_proj = module; break;
            case "v_proj": v_proj = module; break;
            case "o_proj": o_proj = module; break;
            default: throw new ArgumentException($"DecoderAttention has no projection '{name}'.");
        }
        Projections.Reregister(this, ProjectionNames, GetProjection);
    }
}
