namespace LongSeqService.Trainer.Model;

/// <summary>
/// LoRA hyper-parameters with LLaMA-Factory's meaning: rank r, alpha (scale = alpha / r), dropout on
/// the adapter input, and the projections to adapt (HF module names).
/// </summary>
public sealed record LoraSettings(int Rank, double Alpha, double Dropout, IReadOnlyList<string> TargetModules, long Seed = 0)
{
    /// <summary>Every linear layer of a decoder layer ("all" in LLaMA-Factory; lm_head excluded).</summary>
    public static readonly IReadOnlyList<string> AllLinear =
        [.. DecoderAttention.ProjectionNames, .. Mlp.ProjectionNames];

    public double Scaling => Alpha / Rank;

    /// <summary>"all" or a comma list such as "q_proj,v_proj" → validated module names.</summary>
    public static IReadOnlyList<string> ParseTargets(string loraTarget)
    {
        var trimmed = loraTarget.Trim();
        if (trimmed.Length == 0 || trimmed.Equals("all", StringComparison.OrdinalIgnoreCase)) return AllLinear;
        var names = trimmed.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Distinct().ToArray();
        var unknown = names.Where(n => !AllLinear.Contains(n)).ToArray();
        if (unknown.Length > 0)
            throw new ArgumentException(
                $"lora_target: unknown module(s) {string.Join(", ", unknown)}; use 'all' or a comma list of {string.Join(", ", AllLinear)}.");
        // Canonical order, so adapter_config.json does not depend on how the user wrote the list.
        return AllLinear.Where(names.Contains).ToArray();
    }

    public void Validate()
    {
        if (Rank <= 0) throw new ArgumentException($"lora_rank must be positive, got {Rank}.");
        if (Alpha <= 0) throw new ArgumentException($"lora_alpha must be positive, got {Alpha}.");
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"lora_dropout must be in [0, 1), got {Dropout}.");
        if (TargetModules.Count == 0) throw new ArgumentException("lora_target selects no module.");
    }
}
