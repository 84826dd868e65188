using LongSeqService.Shared.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// The decoder body, HF's <c>LlamaModel</c> / <c>MistralModel</c> / <c>Qwen2Model</c> / <c>Qwen3Model</c>
/// (the <c>model.</c> prefix of every parameter name): token embedding, the layers, the final norm.
/// </summary>
public sealed class DecoderStack : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;
    private readonly ModelConfig cfg;
    private readonly RopeScaling? rope;

    public DecoderStack(ModelConfig cfg, IAttention attention, ScalarType dtype, Device? device)
        : base(nameof(DecoderStack))
    {
        this.cfg = cfg;
        rope = cfg.Rope;                                                                   // throws for an unusable rope_scaling
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
        var seqLen = GlobalSequenceLength(positionIds);
        if (ModelArchitectures.SlidingWindowProblem(cfg.EffectiveSlidingWindow, seqLen) is { } window)
            throw new NotSupportedException(window);
        var (cos, sin) = Rotary.CosSin(positionIds, cfg, seqLen, embed_tokens.weight!.dtype); // (B, 1, T, D)
        var h = Unit(embed_tokens, xs => embed_tokens.call(xs[0]), inputIds);              // (B, T, H)
        // Stage 3 gathers each layer's weights inside the checkpoint function, so it always recomputes.
        var checkpoint = (GradientCheckpointing && is_grad_enabled()) || Gather is not null;
        foreach (var layer in layers)
            h = checkpoint ? LayerCheckpoint.Run(layer, h, cos, sin, DropoutRandom, Gather) : layer.call(h, cos, sin);
        return Unit(norm, xs => norm.call(xs[0]), h).MoveToOuterDisposeScope();
    }

    /// <summary>ZeRO stage 3's parameter gather (null: every rank holds the weights).</summary>
    public IParameterGather? Gather { get; set; }

    public RmsNorm Norm => norm;

    /// <summary>A unit that is not a decoder layer: called directly, or with its weights gathered around it (stage 3).</summary>
    internal Tensor Unit(nn.Module unit, Func<Tensor[], Tensor> body, Tensor input) =>
        Gather is null ? body([input]) : LayerCheckpoint.Run(unit, body, [input], DropoutRandom, Gather);

    /// <summary>
    /// HF's sequence length for length-dependent RoPE, max(position_ids) + 1, taken over the whole
    /// sequence: under sequence parallelism each rank holds an equal shard of positions 0..T−1 (the
    /// collator's layout), so T is the local length times the shards, the same on every rank without a
    /// collective. Read only where it matters (dynamic NTK, a sliding window): it costs a sync otherwise.
    /// </summary>
    private long GlobalSequenceLength(Tensor positionIds)
    {
        if (rope is not { DependsOnLength: true } && cfg.EffectiveSlidingWindow is null) return positionIds.shape[1];
        var shards = layers[0].SelfAttention.Attention.SequenceShards;
        return shards == 1 ? positionIds.max().item<long>() + 1 : positionIds.shape[1] * shards;
    }
}
