using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace LongSeqService.Api.Infrastructure;

/// <summary>Titles the document and declares the bearer scheme (an API key in
/// <c>Authorization: Bearer …</c>), so Swagger UI's Authorize button works.</summary>
internal sealed class OpenApiDocumentSetup : IOpenApiDocumentTransformer
{
    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info = new OpenApiInfo
        {
            Title = "LongSeqService",
            Version = "v1",
            Description = "Long-context post-training (SFT, DPO, LoRA) with sequence parallelism. Authorize with an API key; " +
                          "upload a dataset (POST /v1/datasets), submit a job (POST /v1/jobs), follow it (GET /v1/jobs/{id}, hub /hubs/progress).",
        };
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes["Bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "API key",
            Description = "An API key: Authorization: Bearer lsk_…",
        };
        document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("Bearer", document)] = [] }];
        return Task.CompletedTask;
    }
}
