using LongSeqService.Shared.Jobs;

namespace LongSeqService.Api.Models;

/// <summary>Where a usable model comes from.</summary>
public static class ModelKinds
{
    public const string Builtin = "builtin";
    public const string Shape = "shape";
    public const string Registered = "registered";
    public const string Job = "job";
    public const string Checkpoint = "checkpoint";
}

/// <summary>A model a caller may put in <c>model_name_or_path</c>: its name and the numbers that decide which
/// job specs can run on it. <see cref="Path"/> is shown to administrators only, for registered models.</summary>
public sealed record ModelDto(string Id, string Kind, string ModelType, int NumAttentionHeads, int NumKeyValueHeads, int VocabSize,
    int MaxPositionEmbeddings, string? Description = null, Guid? JobId = null, int? Step = null, string? Path = null, DateTime? CreatedAt = null)
{
    public static ModelDto Of(string id, string kind, ModelShape s) => new(id, kind, s.ModelType, s.NumAttentionHeads, s.NumKeyValueHeads, s.VocabSize, s.MaxPositionEmbeddings);
}

/// <summary>POST /v1/models: a server directory to offer every tenant under <see cref="Name"/>.</summary>
public sealed record RegisterModelRequest(string? Name, string? Path, string? Description);

/// <summary>A name resolved for a job: what the host loads (<see cref="Path"/>, a server path or the built-in name) and its shape.</summary>
public sealed record ResolvedModel(string Name, string Kind, string Path, ModelShape Shape);
