using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// The decoder body, HF's <c>LlamaModel</c> / <c>Qwen2Model</c> (the <c>model.</c> prefix of every
/// parameter name): token embedding, the layers, the final norm.
/// </summary>
public sealed class DecoderStack : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;
    private readonly ModelConfig cfg;

    public DecoderStack(ModelConfig cfg, IAttention attention, ScalarType dtype, Device? device)
        : base(nameof(DecoderStack))
    {
        this.cfg = cfg;
        embed_tokens = nn.Embedding(cfg.VocabSize, cfg.HiddenSize, device: device, dtype: dtype);
        layers = nn.ModuleList(Enumerable.Range(0, cfg.NumHiddenLayers)
            .Select(_ => new DecoderLayer(cfg, attention, dtype, device)).ToArray());
        norm = new RmsNorm(cfg.HiddenSize, cfg.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public Embedding EmbedTokens => embed_tokens;
    public IReadOnlyList<DecoderLayer> Layers => [.. layers];
    public bool GradientCheckpointing { get; set; }
    public DropoutRandom? DropoutRandom { get; set; }

    /// <param name="inputIds">(B, T) int64 token ids.</param>
    /// <param name="positionIds">(B, T) int64 global positions (RoPE).</param>
    /// <returns>(B, T, H) hidden states after the final norm.</returns>
    public override Tensor forward(Tensor inputIds, Tensor positionIds)
    {
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(positionIds.shape))
            throw new ArgumentException($"input_ids and position_ids must both be (B, T); got [{string.Join(", ", inputIds.shape)}] and [{string.Join(", ", positionIds.shape)}].");
        using var scope = NewDisposeScope();
        var (cos, sin) = Rotary.CosSin(positionIds, cfg.HeadDim, cfg.RopeTheta, embed_tokens.weight!.dtype); // (B, 1, T, D)
        var h = embed_tokens.call(inputIds);                                               // (B, T, H)
        var checkpoint = GradientCheckpointing && is_grad_enabled();
        foreach (var layer in layers)
            h = checkpoint ? LayerCheckpoint.Run(layer, h, cos, sin, DropoutRandom) : layer.call(h, cos, sin);
        return norm.call(h).MoveToOuterDisposeScope();
    }
}
