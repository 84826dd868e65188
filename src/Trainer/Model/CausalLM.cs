using LongSeqService.Shared.Memory;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// A Llama / Qwen2 causal language model with Hugging Face parameter names
/// (<c>model.layers.0.self_attn.q_proj.weight</c>, <c>lm_head.weight</c>), so HF checkpoints load and
/// saved ones load back into HF. <c>lm_head</c> is absent when <c>tie_word_embeddings</c>: logits then
/// use the embedding matrix.
/// </summary>
public sealed class CausalLM : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly DecoderStack model;
    private readonly Linear? lm_head;

    /// <param name="cfg">The HF config.</param>
    /// <param name="attention">The causal attention core (single-device, ring, Ulysses...).</param>
    /// <param name="dtype">Parameter dtype (float32, bfloat16, float64).</param>
    /// <param name="device">Where the parameters live (default CPU).</param>
    /// <param name="initSeed">Seed of the HF-style random init (<see cref="WeightInit"/>); null leaves
    /// weights zero (norms one) for a loader that fills them all.</param>
    public CausalLM(ModelConfig cfg, IAttention attention, ScalarType dtype = ScalarType.Float32, Device? device = null, long? initSeed = 0)
        : base(nameof(CausalLM))
    {
        Config = cfg;
        model = new DecoderStack(cfg, attention, dtype, device);
        lm_head = cfg.TieWordEmbeddings ? null : Projections.Linear(cfg.HiddenSize, cfg.VocabSize, false, dtype, device);
        Attention = attention;
        LossChunkTokens = LossChunk.Tokens(cfg.VocabSize);
        mlpTileTokens = Mlp.DefaultTileTokens(cfg);
        model.DropoutRandom = DropoutRandom;
        foreach (var layer in model.Layers) layer.Mlp.DropoutRandom = DropoutRandom;
        RegisterComponents();
        if (initSeed is long seed) WeightInit.HfStyle(this, seed);
    }

    public ModelConfig Config { get; }
    public IAttention Attention { get; private set; }
    public DecoderStack Model => model;
    public IReadOnlyList<DecoderLayer> Layers => model.Layers;
    public ScalarType DType => model.EmbedTokens.weight!.dtype;
    public Device Device => model.EmbedTokens.weight!.device;

    /// <summary>The LoRA settings applied with <see cref="ApplyLora"/>; null for full fine-tuning.</summary>
    public LoraSettings? Lora { get; internal set; }

    /// <summary>Random stream of LoRA dropout (per replica; replayed by gradient checkpointing).</summary>
    public DropoutRandom DropoutRandom { get; } = new(seed: 0);

    /// <summary>Recompute each decoder layer in backward instead of keeping its activations; the MLPs then
    /// run over sequence tiles of <see cref="MlpTileTokens"/> (so one layer's recomputation never holds the
    /// whole (T, intermediate) activations either).</summary>
    public bool GradientCheckpointing
    {
        get => model.GradientCheckpointing;
        set
        {
            model.GradientCheckpointing = value;
            ApplyMlpTiling();
        }
    }

    /// <summary>Tokens per MLP tile under gradient checkpointing (<see cref="Mlp.DefaultTileTokens"/>; tests set it small).</summary>
    public int MlpTileTokens
    {
        get => mlpTileTokens;
        set
        {
            mlpTileTokens = value;
            ApplyMlpTiling();
        }
    }

    private int mlpTileTokens;

    private void ApplyMlpTiling()
    {
        foreach (var layer in model.Layers) layer.Mlp.TileTokens = GradientCheckpointing ? mlpTileTokens : null;
    }

    /// <summary>Replaces the causal core in every layer (e.g. ring attention for sequence parallelism).</summary>
    public void SetAttention(IAttention attention)
    {
        Attention = attention;
        foreach (var layer in model.Layers) layer.SelfAttention.Attention = attention;
    }

    /// <summary>(B, T) ids and (B, T) global positions → (B, T, H) hidden states after the final norm.</summary>
    public Tensor Hidden(Tensor inputIds, Tensor positionIds) => model.call(inputIds, positionIds);

    /// <summary>The (V, H) output projection: lm_head's weight, or the embedding matrix when tied.</summary>
    public Parameter HeadWeight => (lm_head?.weight ?? model.EmbedTokens.weight)!;

    /// <summary>The module that holds <see cref="HeadWeight"/>: lm_head, or the embedding when tied.</summary>
    public nn.Module HeadModule => (nn.Module?)lm_head ?? model.EmbedTokens;

    /// <summary>The units ZeRO stage 3 gathers one at a time, in forward order: the embedding, each decoder
    /// layer, the final norm, lm_head (absent when tied: the head is the embedding again).</summary>
    public IReadOnlyList<nn.Module> Units =>
        [model.EmbedTokens, .. model.Layers, model.Norm, .. lm_head is null ? Array.Empty<nn.Module>() : [lm_head]];

    /// <summary>ZeRO stage 3's parameter gather (null: this rank holds every weight).</summary>
    public IParameterGather? ParameterGather
    {
        get => model.Gather;
        set => model.Gather = value;
    }

    /// <summary>(B, T, H) hidden → what <paramref name="head"/> computes from it with <see cref="HeadWeight"/> (the
    /// fused head + loss), the head's weights gathered around it under stage 3.</summary>
    public Tensor Head(Tensor hidden, Func<Tensor, Tensor> head) => model.Unit(HeadModule, xs => head(xs[0]), hidden);

    /// <summary>Tokens per chunk of the fused LM head + loss (Training/ChunkedLmLoss); by default the shared
    /// rule of <see cref="LossChunk"/> (128 MiB of float32 logits), which the memory estimator uses too.</summary>
    public int LossChunkTokens { get; set; }

    /// <summary>(B, T, H) hidden → (B, T, V) logits (in the model dtype). The whole (T, V) tensor: for
    /// generation and tests; training computes its loss chunk by chunk instead.</summary>
    public Tensor Logits(Tensor hidden) =>
        lm_head is null ? nn.functional.linear(hidden, model.EmbedTokens.weight!) : lm_head.call(hidden);

    /// <summary>Logits for (B, T) ids at (B, T) positions.</summary>
    public override Tensor forward(Tensor inputIds, Tensor positionIds)
    {
        using var scope = NewDisposeScope();
        return Logits(Hidden(inputIds, positionIds)).MoveToOuterDisposeScope();
    }

    /// <summary>Wraps the target projections in LoRA adapters and freezes every other parameter.</summary>
    public void ApplyLora(LoraSettings settings) => LoraAdapters.Apply(this, settings);

    /// <summary>Folds B·A·scale into the base weights and removes the adapters (for export).</summary>
    public void MergeLora() => LoraAdapters.Merge(this);

    /// <summary>Parameters under their HF names, without LoRA adapter tensors (what model.safetensors holds).</summary>
    public IEnumerable<(string Name, Parameter Parameter)> BaseParameters() =>
        named_parameters().Where(p => !LoraAdapters.IsAdapterName(p.name)).Select(p => (p.name, p.parameter));
}
