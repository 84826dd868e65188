namespace LongSeqService.Shared.Models;

/// <summary>The numbers of a config.json that decide the tensors of a decoder (HF names).</summary>
public sealed record DecoderDims(string ModelType, int VocabSize, int HiddenSize, int IntermediateSize, int NumHiddenLayers,
    int NumAttentionHeads, int NumKeyValueHeads, int HeadDim, bool TieWordEmbeddings, bool? AttentionBias);

/// <summary>
/// The decoder families the trainer builds, as Hugging Face's modeling files define them: which
/// projections carry a bias, whether q and k are RMS-normalised per head (Qwen3), which sliding window
/// applies, and the parameter table a checkpoint must hold. One place for the trainer's modules and the
/// API's checks of a model directory.
/// </summary>
public static class ModelArchitectures
{
    public static readonly string[] SupportedTypes = ["llama", "mistral", "qwen2", "qwen3"];

    /// <summary>Qwen2 always has q/k/v biases; Llama and Qwen3 follow attention_bias; Mistral has none.</summary>
    public static bool QkvBias(string modelType, bool? attentionBias) =>
        modelType == "qwen2" || (modelType is "llama" or "qwen3" && attentionBias == true);

    /// <summary>o_proj's bias: attention_bias for Llama and Qwen3; never for Qwen2 and Mistral.</summary>
    public static bool OutputBias(string modelType, bool? attentionBias) => modelType is "llama" or "qwen3" && attentionBias == true;

    /// <summary>Qwen3 normalises each head's q and k (RMSNorm over head_dim) before RoPE.</summary>
    public static bool QkNorm(string modelType) => modelType == "qwen3";

    /// <summary>The sliding window attention uses: Mistral's <c>sliding_window</c> whenever set; Qwen2/Qwen3's
    /// only with <c>use_sliding_window: true</c>; null for plain causal attention.</summary>
    public static int? SlidingWindow(string modelType, int? slidingWindow, bool? useSlidingWindow) => modelType switch
    {
        "mistral" => slidingWindow,
        "qwen2" or "qwen3" when useSlidingWindow == true => slidingWindow,
        _ => null,
    };

    /// <summary>Null when a sequence of <paramref name="tokens"/> sees plain causal attention under
    /// <paramref name="window"/> (HF: key j is visible to query i when i − j &lt; window), else why not.</summary>
    public static string? SlidingWindowProblem(int? window, long tokens) =>
        window is { } w && tokens > w
            ? $"sliding_window {w} would limit attention in sequences of {tokens} tokens, and sliding-window attention is not implemented; keep sequences (cutoff_len) at most {w} tokens"
            : null;

    /// <summary>Every parameter of the model under its HF name with its shape, in module order.</summary>
    public static IEnumerable<(string Name, long[] Shape)> Parameters(DecoderDims d)
    {
        long h = d.HiddenSize, q = (long)d.NumAttentionHeads * d.HeadDim, kv = (long)d.NumKeyValueHeads * d.HeadDim;
        bool qkvBias = QkvBias(d.ModelType, d.AttentionBias), oBias = OutputBias(d.ModelType, d.AttentionBias);
        yield return ("model.embed_tokens.weight", [d.VocabSize, h]);
        for (int i = 0; i < d.NumHiddenLayers; i++)
        {
            var p = $"model.layers.{i}.";
            yield return (p + "input_layernorm.weight", [h]);
            foreach (var (name, rows) in new[] { ("q_proj", q), ("k_proj", kv), ("v_proj", kv) })
            {
                yield return (p + $"self_attn.{name}.weight", [rows, h]);
                if (qkvBias) yield return (p + $"self_attn.{name}.bias", [rows]);
            }
            yield return (p + "self_attn.o_proj.weight", [h, q]);
            if (oBias) yield return (p + "self_attn.o_proj.bias", [h]);
            if (QkNorm(d.ModelType))
            {
                yield return (p + "self_attn.q_norm.weight", [d.HeadDim]);
                yield return (p + "self_attn.k_norm.weight", [d.HeadDim]);
            }
            yield return (p + "post_attention_layernorm.weight", [h]);
            yield return (p + "mlp.gate_proj.weight", [d.IntermediateSize, h]);
            yield return (p + "mlp.up_proj.weight", [d.IntermediateSize, h]);
            yield return (p + "mlp.down_proj.weight", [h, d.IntermediateSize]);
        }
        yield return ("model.norm.weight", [h]);
        if (!d.TieWordEmbeddings) yield return ("lm_head.weight", [d.VocabSize, h]);
    }

    /// <summary>Tensors HF checkpoints may carry that the model does not need: old rotary buffers, and a
    /// duplicated lm_head when the embeddings are tied.</summary>
    public static bool IsIgnorableTensor(string name, bool tieWordEmbeddings) =>
        name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal) || (tieWordEmbeddings && name == "lm_head.weight");
}
