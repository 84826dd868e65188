using System.Text.Json.Nodes;
using LongSeqService.Api.Jobs;
using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace LongSeqService.Api.Infrastructure;

/// <summary>Titles the document, declares the bearer scheme (an API key in <c>Authorization: Bearer …</c>,
/// so Swagger UI's Authorize button works) and describes POST /v1/jobs's body from the job spec's
/// declaration (<see cref="JobSpecKeys"/>): every key with its type, bounds, closed set, default and meaning.</summary>
internal sealed class OpenApiDocumentSetup : IOpenApiDocumentTransformer
{
    public const string JobSubmissionSchema = "JobSubmission";

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

        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        document.Components.Schemas[JobSubmissionSchema] = JobSubmission();
        if (document.Paths?.FirstOrDefault(p => p.Key.TrimEnd('/') == "/v1/jobs").Value is { Operations: { } ops } && ops.TryGetValue(HttpMethod.Post, out var post))
            post.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = new OpenApiSchemaReference(JobSubmissionSchema, document) } },
            };
        return Task.CompletedTask;
    }

    /// <summary>The body of POST /v1/jobs as JSON Schema: the declared keys a tenant may set, the submission's
    /// own keys, and LLaMA-Factory's ignored keys (deprecated: accepted with a warning).</summary>
    internal static OpenApiSchema JobSubmission()
    {
        var properties = new Dictionary<string, IOpenApiSchema>();
        foreach (var k in JobSpecKeys.All.Where(k => !k.ServiceOwned)) properties[k.Name] = Property(k);
        properties["idempotency_key"] = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = Jobs.JobSubmission.MaxIdempotencyKey, Description = "A retry with the same key returns the same job." };
        properties["priority"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "-100", Maximum = "100", Default = JsonValue.Create(0), Description = "Higher is placed first." };
        foreach (var k in JobSpecKeys.Ignored) properties[k.Name] = new OpenApiSchema { Deprecated = true, Description = $"LLaMA-Factory key, accepted and ignored: {k.Why}." };
        return new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "The job spec (LLaMA-Factory's key names; `dataset` is a dataset id).",
            Properties = properties,
            Required = new HashSet<string> { "model_name_or_path", "dataset" },
            AdditionalPropertiesAllowed = false,
        };
    }

    private static OpenApiSchema Property(JobSpecKey k)
    {
        var type = k.Type switch
        {
            SpecType.Integer => JsonSchemaType.Integer,
            SpecType.Number => JsonSchemaType.Number,
            SpecType.Boolean => JsonSchemaType.Boolean,
            _ => JsonSchemaType.String,
        };
        var s = new OpenApiSchema
        {
            Type = k.Nullable ? type | JsonSchemaType.Null : type,
            Description = k.Description + (k.Default is null ? $" Default: {k.DefaultText}." : ""),
            Default = k.Default switch { null => null, Enum e => JsonValue.Create(k.DefaultText), var v => JsonValue.Create(v) },
        };
        if (k.Allowed != null) s.Enum = [.. k.Allowed.Select(a => (JsonNode)JsonValue.Create(a))];
        if (k.Type == SpecType.String) s.MaxLength = k.MaxLength;
        if (k.Min is { } lo) { if (k.MinExclusive) s.ExclusiveMinimum = Bound(lo); else s.Minimum = Bound(lo); }
        if (k.Max is { } hi) s.Maximum = Bound(hi);
        return s;
    }

    /// <summary>A bound as JSON Schema writes it: a plain decimal, never 1E+12.</summary>
    private static string Bound(double x) => ((decimal)x).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
