using System.Text.Json;

namespace LongSeqService.Shared.Models;

/// <summary>
/// A config.json's <c>rope_scaling</c> (or transformers 5's <c>rope_parameters</c>): how the RoPE
/// inverse frequencies are rescaled to reach a longer context. The formulas are those of Hugging Face
/// transformers' <c>modeling_rope_utils.py</c> (the <c>_compute_*_parameters</c> functions), written
/// over doubles: <see cref="InverseFrequencies"/> gives inv_freq (D/2 values) and
/// <see cref="AttentionScaling"/> the factor HF multiplies cos and sin by (yarn's mscale; 1 otherwise).
/// Shared by the trainer (which builds the tables) and the API (which refuses what cannot load).
/// </summary>
public sealed record RopeScaling(
    string Type,
    double Factor,
    int? OriginalMaxPositionEmbeddings = null,
    double? LowFreqFactor = null,
    double? HighFreqFactor = null,
    double? AttentionFactor = null,
    double? BetaFast = null,
    double? BetaSlow = null,
    double? Mscale = null,
    double? MscaleAllDim = null,
    bool Truncate = true)
{
    public static readonly string[] SupportedTypes = ["linear", "dynamic", "yarn", "llama3"];

    /// <summary>Whether the tables depend on the sequence length (dynamic NTK): every rank of a
    /// sequence-parallel group must then use the same, global length.</summary>
    public bool DependsOnLength => Type == "dynamic";

    /// <summary>
    /// Reads a <c>rope_scaling</c> object. Null (and <c>rope_type: default</c>) means plain RoPE. The type is
    /// <c>rope_type</c>, else the legacy <c>type</c> key, as HF's <c>standardize_rope_params</c> reads it.
    /// <paramref name="error"/> is one line naming the problem when the object cannot be used.
    /// </summary>
    public static RopeScaling? Parse(JsonElement? element, out string? error)
    {
        error = null;
        if (element is not { } e || e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        if (e.ValueKind != JsonValueKind.Object)
        {
            error = $"rope_scaling must be an object or null, got {e.ValueKind.ToString().ToLowerInvariant()}";
            return null;
        }
        var type = String(e, "rope_type") ?? String(e, "type") ?? "default";
        if (type == "default") return null;
        if (!SupportedTypes.Contains(type))
        {
            error = $"rope_scaling type '{type}' is not supported ({string.Join(", ", SupportedTypes)} are)";
            return null;
        }
        var factor = Number(e, "factor");
        if (factor is not > 0)
        {
            error = $"rope_scaling {{\"rope_type\": \"{type}\"}} needs a positive factor";
            return null;
        }
        var scaling = new RopeScaling(type, factor.Value,
            OriginalMaxPositionEmbeddings: Number(e, "original_max_position_embeddings") is { } o ? (int)o : null,
            LowFreqFactor: Number(e, "low_freq_factor"), HighFreqFactor: Number(e, "high_freq_factor"),
            AttentionFactor: Number(e, "attention_factor"), BetaFast: Number(e, "beta_fast"), BetaSlow: Number(e, "beta_slow"),
            Mscale: Number(e, "mscale"), MscaleAllDim: Number(e, "mscale_all_dim"),
            Truncate: !e.TryGetProperty("truncate", out var t) || t.ValueKind != JsonValueKind.False);
        if (type == "llama3" && (scaling.LowFreqFactor is null || scaling.HighFreqFactor is null || scaling.OriginalMaxPositionEmbeddings is not > 0
                                 || scaling.HighFreqFactor <= scaling.LowFreqFactor))
        {
            error = "rope_scaling llama3 needs low_freq_factor < high_freq_factor and a positive original_max_position_embeddings";
            return null;
        }
        return scaling;
    }

    /// <summary>
    /// inv_freq (D/2 values) for rotary dimension <paramref name="dim"/>, base <paramref name="theta"/>.
    /// <paramref name="maxPositionEmbeddings"/> is config.json's; <paramref name="seqLen"/> the sequence length
    /// (max position + 1), used only by dynamic NTK. <paramref name="scaling"/> null gives plain RoPE.
    /// </summary>
    public static double[] InverseFrequencies(RopeScaling? scaling, int dim, double theta, int maxPositionEmbeddings, long seqLen)
    {
        // Plain RoPE: inv_freq[i] = θ^(−2i/D).
        double[] Plain(double b) => Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(b, 2.0 * i / dim)).ToArray();
        switch (scaling?.Type)
        {
            case null:
                return Plain(theta);
            case "linear":
                // Dividing the frequencies is dividing the positions by factor (position interpolation).
                return Plain(theta).Select(f => f / scaling.Factor).ToArray();
            case "dynamic":
            {
                // NTK-aware: raise the base with the length, once the sequence outgrows max_position_embeddings.
                double len = Math.Max(seqLen, maxPositionEmbeddings);
                double b = theta * Math.Pow(scaling.Factor * len / maxPositionEmbeddings - (scaling.Factor - 1), dim / (dim - 2.0));
                return Plain(b);
            }
            case "llama3":
                return Llama3(scaling, Plain(theta));
            default:
                return Yarn(scaling, dim, theta, maxPositionEmbeddings);
        }
    }

    /// <summary>The factor cos and sin are multiplied by: yarn's attention factor, 1 for the other types.</summary>
    public static double AttentionScaling(RopeScaling? scaling)
    {
        if (scaling?.Type != "yarn") return 1.0;
        if (scaling.AttentionFactor is { } given) return given;
        var factor = scaling.Factor;
        static double MscaleOf(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
        return scaling.Mscale is { } m && m != 0 && scaling.MscaleAllDim is { } all && all != 0
            ? MscaleOf(factor, m) / MscaleOf(factor, all)
            : MscaleOf(factor, 1);
    }

    // Llama 3.1: wavelengths longer than original/low_freq_factor are interpolated by factor, shorter than
    // original/high_freq_factor kept, and those in between blended smoothly.
    private static double[] Llama3(RopeScaling s, double[] plain)
    {
        double old = s.OriginalMaxPositionEmbeddings!.Value, low = s.LowFreqFactor!.Value, high = s.HighFreqFactor!.Value;
        double lowWavelen = old / low, highWavelen = old / high;
        return plain.Select(f =>
        {
            double wavelen = 2 * Math.PI / f;
            if (wavelen > lowWavelen) return f / s.Factor;
            if (wavelen < highWavelen) return f;
            double smooth = (old / wavelen - low) / (high - low);
            return (1 - smooth) * f / s.Factor + smooth * f;
        }).ToArray();
    }

    // YaRN: extrapolate the fast dimensions, interpolate the slow ones, a linear ramp between the
    // dimensions that make beta_fast and beta_slow turns over the original context.
    private static double[] Yarn(RopeScaling s, int dim, double theta, int maxPositionEmbeddings)
    {
        double original = s.OriginalMaxPositionEmbeddings ?? maxPositionEmbeddings;
        // factor as given, as transformers 5 reads it (4.5x replaced it by max_position_embeddings / original
        // whenever original was set, turning Qwen2.5's documented {factor: 4, original: 32768} into 1).
        double factor = s.Factor;
        double betaFast = s.BetaFast is { } bf && bf != 0 ? bf : 32, betaSlow = s.BetaSlow is { } bs && bs != 0 ? bs : 1;
        double CorrectionDim(double rotations) => dim * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = CorrectionDim(betaFast), high = CorrectionDim(betaSlow);
        if (s.Truncate) (low, high) = (Math.Floor(low), Math.Ceiling(high));
        (low, high) = (Math.Max(low, 0), Math.Min(high, dim - 1));
        if (low == high) high += 0.001;                                                   // HF: prevent a singularity
        return Enumerable.Range(0, dim / 2).Select(i =>
        {
            double posFreq = Math.Pow(theta, 2.0 * i / dim);
            double extrapolation = 1 / posFreq, interpolation = 1 / (factor * posFreq);
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double extrapolationFactor = 1 - ramp;
            return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
        }).ToArray();
    }

    private static string? String(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static double? Number(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
}
