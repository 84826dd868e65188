using LongSeqService.Api.Auth;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Api.Models;

/// <summary>/v1/models: the base models a job can name without a path (the built-in tiny models).
/// Local Hugging Face directories are named by path in model_name_or_path.</summary>
public static class ModelEndpoints
{
    public sealed record ModelDto(string Id, string ModelType, int NumAttentionHeads, int NumKeyValueHeads, int VocabSize, int MaxPositionEmbeddings);

    public static void MapModelApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/v1/models", () => TypedResults.Ok(ModelShape.Builtins
                .Select(kv => new ModelDto(kv.Key, kv.Value.ModelType, kv.Value.NumAttentionHeads, kv.Value.NumKeyValueHeads, kv.Value.VocabSize, kv.Value.MaxPositionEmbeddings)).ToList()))
            .WithTags("Models").WithSummary("Built-in base models").RequireAuthorization(Policies.Tenant).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
}
