using LongSeqService.Shared.Datasets;

namespace LongSeqService.Scheduler.Data;

/// <summary>An uploaded dataset: metadata here, the file in the artifact store under its content hash.</summary>
public sealed class Dataset
{
    public required string Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Name { get; set; }
    public required string Format { get; set; }
    public bool IsPreference { get; set; }
    public int Rows { get; set; }
    public long SizeBytes { get; set; }
    public required string Sha256 { get; set; }
    /// <summary>Path relative to the data directory, e.g. datasets/ab/abcdef….jsonl.</summary>
    public required string StoragePath { get; set; }
    /// <summary>The file as uploaded, when what is stored (<see cref="StoragePath"/>) was converted from it: an OpenAI
    /// fine-tuning file (POST /v1/files) is kept in sharegpt form for training and as sent for its download. Null otherwise.</summary>
    public string? SourcePath { get; set; }
    public int? CharMin { get; set; }
    public double? CharMean { get; set; }
    public int? CharP50 { get; set; }
    public int? CharP95 { get; set; }
    public int? CharMax { get; set; }
    public DateTime CreatedAt { get; set; }

    public DatasetDto ToDto(TokenStats? tokens = null) => new(Id, Name, Format, IsPreference, Rows, SizeBytes, Sha256, CreatedAt,
        CharMin is { } min ? new LengthStats(min, CharMean ?? 0, CharP50 ?? 0, CharP95 ?? 0, CharMax ?? 0) : null, tokens);
}
