using LongSeqService.Shared.Wire;

namespace LongSeqService.Shared.Datasets;

/// <summary>An uploaded dataset as clients see it. Character lengths always; token lengths
/// (token_stats) when asked for with a model (<c>GET /v1/datasets/{id}?model=…&amp;cutoff_len=…</c>).</summary>
/// <param name="Id">The dataset's id (ds-…): what a job spec's dataset names.</param>
/// <param name="Name">The uploaded file's name.</param>
/// <param name="Format">Its format (LLaMA-Factory's), detected or given.</param>
/// <param name="IsPreference">True for preference data (chosen/rejected), which stage dpo trains on.</param>
/// <param name="Rows">Its examples.</param>
/// <param name="SizeBytes">The file's size in bytes.</param>
/// <param name="Sha256">The file's SHA-256 (hex); the same bytes uploaded again are the same dataset.</param>
/// <param name="CreatedAt">When it was uploaded.</param>
/// <param name="CharLength">Example lengths in characters.</param>
/// <param name="TokenStats">Example lengths in tokens, under the model asked for (?model=); null otherwise.</param>
public sealed record DatasetDto(
    string Id,
    string Name,
    [property: ClosedSet(typeof(DatasetFormats))] string Format,
    bool IsPreference,
    int Rows,
    long SizeBytes,
    string Sha256,
    DateTimeOffset CreatedAt,
    LengthStats? CharLength,
    TokenStats? TokenStats);

/// <summary>Token lengths under one model's tokenizer and template.</summary>
/// <param name="Model">The model whose tokenizer and template counted them.</param>
/// <param name="Lengths">Example lengths in tokens.</param>
/// <param name="OverCutoff">Examples longer than cutoff_len (they would be truncated).</param>
/// <param name="CutoffLen">The cutoff_len counted against.</param>
public sealed record TokenStats(string Model, LengthStats Lengths, int OverCutoff, int CutoffLen);
