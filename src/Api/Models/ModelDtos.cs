using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Api.Models;

/// <summary>Where a usable model comes from.</summary>
public static class ModelKinds
{
    public const string Builtin = "builtin";
    public const string Shape = "shape";
    public const string Registered = "registered";
    public const string Job = "job";
    public const string Checkpoint = "checkpoint";

    public static readonly string[] All = [Builtin, Shape, Registered, Job, Checkpoint];
}

/// <summary>A model a caller may put in <c>model_name_or_path</c>: its name and the numbers that decide which
/// job specs can run on it. Its path is shown to administrators only, for registered models.</summary>
/// <param name="Id">The name a job spec gives as model_name_or_path.</param>
/// <param name="Kind">Where it comes from.</param>
/// <param name="ModelType">config.json's model_type (llama, qwen2, …).</param>
/// <param name="NumAttentionHeads">Attention heads (Ulysses needs them divisible by sequence_parallel_size).</param>
/// <param name="NumKeyValueHeads">Key/value heads (grouped-query attention).</param>
/// <param name="VocabSize">Vocabulary size.</param>
/// <param name="MaxPositionEmbeddings">The context length the model was built for.</param>
/// <param name="Description">What an administrator wrote about it (registered models).</param>
/// <param name="JobId">The job that trained it (job and checkpoint models).</param>
/// <param name="Step">The checkpoint's step (checkpoint models).</param>
/// <param name="Path">Its directory on the server: shown to administrators only, for registered models.</param>
/// <param name="CreatedAt">When it was registered (registered models).</param>
public sealed record ModelDto(string Id, [property: ClosedSet(typeof(ModelKinds))] string Kind, string ModelType, int NumAttentionHeads, int NumKeyValueHeads, int VocabSize,
    int MaxPositionEmbeddings, string? Description = null, Guid? JobId = null, int? Step = null, string? Path = null, DateTime? CreatedAt = null)
{
    public static ModelDto Of(string id, string kind, ModelShape s) => new(id, kind, s.ModelType, s.NumAttentionHeads, s.NumKeyValueHeads, s.VocabSize, s.MaxPositionEmbeddings);
}

/// <summary>POST /v1/models: a server directory to offer every tenant under a name.</summary>
/// <param name="Name">1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit.</param>
/// <param name="Path">The absolute path of a Hugging Face model directory on the server (config.json, *.safetensors, tokenizer.json).</param>
/// <param name="Description">What it is, at most 1000 characters.</param>
public sealed record RegisterModelRequest(string? Name, string? Path, string? Description);

/// <summary>A name resolved for a job: what the host loads (<see cref="Path"/>, a server path or the built-in name) and its shape.</summary>
public sealed record ResolvedModel(string Name, string Kind, string Path, ModelShape Shape);
