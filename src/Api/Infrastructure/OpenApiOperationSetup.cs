using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace LongSeqService.Api.Infrastructure;

/// <summary>Marks an endpoint whose 200 answer is a file's bytes (application/octet-stream).</summary>
public sealed class BinaryResponse;

/// <summary>
/// What every operation of the document says the same way: each 4xx/5xx answer is a problem details body
/// (application/problem+json; the status-code pages write one for a bare 401/403/404), every operation may
/// answer 400 (an unknown query parameter, see <see cref="KnownQueryParameters"/>), a file download is typed
/// as binary, and an anonymous endpoint asks for no key.
/// </summary>
internal sealed class OpenApiOperationSetup : IOpenApiOperationTransformer
{
    public const string ProblemJson = "application/problem+json";

    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        operation.Responses ??= new OpenApiResponses();
        if (!operation.Responses.ContainsKey("400"))
            operation.Responses["400"] = new OpenApiResponse { Description = "Bad Request" };
        foreach (var (status, response) in operation.Responses.ToList())
        {
            if (!int.TryParse(status, out var code) || code < 400 || response is not OpenApiResponse r) continue;
            r.Content ??= new Dictionary<string, OpenApiMediaType>();
            // A body declared as something else (the health report's 503) stays as it is.
            if (r.Content.Count > 0 && !r.Content.ContainsKey(ProblemJson) && !r.Content.ContainsKey("application/json")) r.Content.Clear();
            if (r.Content.Count == 0)
            {
                var type = code is 400 or 422 ? typeof(Microsoft.AspNetCore.Http.HttpValidationProblemDetails) : typeof(Microsoft.AspNetCore.Mvc.ProblemDetails);
                r.Content[ProblemJson] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(type, null, cancellationToken) };
            }
            if (string.IsNullOrEmpty(r.Description)) r.Description = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(code);
        }

        if (metadata.OfType<BinaryResponse>().Any())
            operation.Responses["200"] = new OpenApiResponse
            {
                Description = "The file's bytes",
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["application/octet-stream"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" } },
                },
            };

        if (metadata.OfType<IAllowAnonymous>().Any()) operation.Security = [];
    }
}
