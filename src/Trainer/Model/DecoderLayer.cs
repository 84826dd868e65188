using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>One pre-norm decoder layer: x + attn(norm(x)), then h + mlp(norm(h)).</summary>
public sealed class DecoderLayer : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly RmsNorm input_layernorm;
    private readonly DecoderAttention self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly Mlp mlp;

    public DecoderLayer(ModelConfig cfg, IAttention attention, ScalarType dtype, Device? device)
        : base(nameof(DecoderLayer))
    {
        input_layernorm = new RmsNorm(cfg.HiddenSize, cfg.RmsNormEps, dtype, device);
        self_attn = new DecoderAttention(cfg, attention, dtype, device);
        post_attention_layernorm = new RmsNorm(cfg.HiddenSize, cfg.RmsNormEps, dtype, device);
        mlp = new Mlp(cfg, dtype, device);
        RegisterComponents();
    }

    public DecoderAttention SelfAttention => self_attn;
    public Mlp Mlp => mlp;

    /// <param name="x">(B, T, H)</param><param name="cos">(B, 1, T, D)</param><param name="sin">(B, 1, T, D)</param>
    public override Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.call(input_layernorm.call(x), cos, sin);
        var output = h + mlp.call(post_attention_layernorm.call(h));
        return output.MoveToOuterDisposeScope();                                           // (B, T, H)
    }
}
