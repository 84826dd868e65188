namespace LongSeqService.Shared.Datasets;

/// <summary>An uploaded dataset as clients see it. Token statistics need a model's tokenizer and are
/// not computed by the API yet (<see cref="TokenStats"/> stays null); character lengths always are.</summary>
public sealed record DatasetDto(
    string Id,
    string Name,
    string Format,
    bool IsPreference,
    int Rows,
    long SizeBytes,
    string Sha256,
    DateTimeOffset CreatedAt,
    LengthStats? CharLength,
    TokenStats? TokenStats);

/// <summary>Token lengths under one model's tokenizer and template.</summary>
public sealed record TokenStats(string Model, LengthStats Lengths, int OverCutoff, int CutoffLen);

public sealed record DatasetPage(IReadOnlyList<DatasetDto> Data);
