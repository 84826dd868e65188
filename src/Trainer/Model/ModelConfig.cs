using System.Text.Json;
using System.Text.Json.Serialization;
using LongSeqService.Shared.Models;

namespace LongSeqService.Trainer.Model;

/// <summary>A Hugging Face <c>config.json</c> for Llama / Mistral / Qwen2 / Qwen3 decoders; property names are HF's.</summary>
public sealed record ModelConfig
{
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "llama";          // llama | mistral | qwen2 | qwen3
    [JsonPropertyName("architectures")] public string[] Architectures { get; init; } = ["LlamaForCausalLM"];
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    [JsonPropertyName("head_dim")] public int? HeadDimOverride { get; init; }
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 4096;
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    /// <summary>Qwen2 has biases on q/k/v; Llama has <c>attention_bias: false</c>.</summary>
    [JsonPropertyName("attention_bias")] public bool? AttentionBias { get; init; }
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [JsonPropertyName("torch_dtype")] public string TorchDtype { get; init; } = "float32";
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    [JsonPropertyName("eos_token_id")] public JsonElement? EosTokenId { get; init; }
    /// <summary>HF <c>rope_scaling</c> (linear, dynamic, yarn, llama3), kept as written so a saved config.json
    /// carries it unchanged; <see cref="Rope"/> is its parsed form.</summary>
    [JsonPropertyName("rope_scaling")] public JsonElement? RopeScaling { get; init; }
    /// <summary>transformers 5's spelling of rope_scaling (with rope_theta inside); read when rope_scaling is absent.</summary>
    [JsonPropertyName("rope_parameters")] public JsonElement? RopeParameters { get; init; }
    /// <summary>Mistral's window (null: full causal); Qwen2/Qwen3 use theirs only with use_sliding_window.</summary>
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; }
    [JsonPropertyName("use_sliding_window")] public bool? UseSlidingWindow { get; init; }

    /// <summary>Every other key of config.json, kept so that a saved model writes them back unchanged.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    [JsonIgnore] public bool QkvBias => ModelArchitectures.QkvBias(ModelType, AttentionBias);
    [JsonIgnore] public bool OutputBias => ModelArchitectures.OutputBias(ModelType, AttentionBias);
    [JsonIgnore] public bool QkNorm => ModelArchitectures.QkNorm(ModelType);
    [JsonIgnore] public int? EffectiveSlidingWindow => ModelArchitectures.SlidingWindow(ModelType, SlidingWindow, UseSlidingWindow);

    /// <summary>The parsed rope_scaling (null: plain RoPE). Throws <see cref="NotSupportedException"/> for one
    /// that cannot be used; the loader checks it first with the same parser.</summary>
    [JsonIgnore] public RopeScaling? Rope => Shared.Models.RopeScaling.Parse(RopeScaling ?? RopeParameters, out var error) is var r && error is null ? r
        : throw new NotSupportedException(error);

    [JsonIgnore] public DecoderDims Dims => new(ModelType, VocabSize, HiddenSize, IntermediateSize, NumHiddenLayers,
        NumAttentionHeads, KeyValueHeads, HeadDim, TieWordEmbeddings, AttentionBias);
}
