using System.Text.Json.Nodes;
using LongSeqService.Api.Jobs;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace LongSeqService.Api.Infrastructure;

/// <summary>Titles each document (the tenants' <c>v1</c>, the trainer hosts' <c>hosts</c>), declares the bearer scheme
/// (an API key in <c>Authorization: Bearer …</c>, so Swagger UI's Authorize button works), describes POST /v1/jobs's and
/// POST /v1/estimates's body from the job spec's declaration (<see cref="JobSpecKeys"/>), and publishes the hub's messages
/// (<see cref="ProgressHubNames"/>) as components of the tenants' document.</summary>
internal sealed class OpenApiDocumentSetup : IOpenApiDocumentTransformer
{
    public const string JobSubmissionSchema = "JobSubmission";
    public const string EstimateRequestSchema = "JobEstimateRequest";
    public const string TenantDocument = "v1";

    /// <summary>Which document an endpoint belongs to: the hosts' endpoints carry its group name, every other one is the tenants'.</summary>
    public static bool Includes(string document, Microsoft.AspNetCore.Mvc.ApiExplorer.ApiDescription endpoint) =>
        document == TenantDocument ? endpoint.GroupName == null : endpoint.GroupName == document;

    private static readonly Dictionary<string, string> Tags = new()
    {
        ["Jobs"] = "Training jobs: submit, follow, cancel; their events, metrics, checkpoints and output files.",
        ["Datasets"] = "Uploaded training data (LLaMA-Factory's alpaca and sharegpt formats), checked as a whole.",
        ["Models"] = "The models a job may train from.",
        ["Keys"] = "API keys (admin) and the caller's own identity.",
        ["Hosts"] = "Trainer hosts and their slots.",
        ["Runs"] = "What a trainer host reports while it executes a run (host keys).",
        ["Estimates"] = "Predicted memory of a job spec.",
        ["Health"] = "Whether the service can work.",
    };

    public async Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        bool tenant = context.DocumentName == TenantDocument;
        document.Info = new OpenApiInfo
        {
            Title = tenant ? "LongSeqService" : "LongSeqService trainer hosts",
            Version = "v1",
            Description = tenant
                ? "Long-context post-training (SFT, DPO, LoRA) with sequence parallelism. Authorize with an API key; " +
                  "upload a dataset (POST /v1/datasets), submit a job (POST /v1/jobs), follow it (GET /v1/jobs/{id}, or the SignalR hub " +
                  $"{ProgressHubNames.Path}: client events `{ProgressHubNames.State}` ({nameof(JobStateMessage)}) and `{ProgressHubNames.Progress}` ({nameof(MetricDto)})). " +
                  "Every list is paged the same way: ?after=<next_after>&limit=N → {data, has_more, next_after}."
                : "What a trainer host calls with its host key: register its slots, heartbeat (the answer leases it runs), and report each run's start, metrics and end.",
            License = new OpenApiLicense { Name = "Proprietary", Identifier = "LicenseRef-Proprietary" },
        };
        // Relative: the document is right wherever the service is reached from.
        document.Servers = [new OpenApiServer { Url = "/", Description = "This service" }];
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes["Bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "API key",
            Description = tenant ? "An API key: Authorization: Bearer lsk_…" : "A host key (role host), bound to the one host that first registered with it.",
        };
        document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("Bearer", document)] = [] }];
        var used = (document.Paths ?? new OpenApiPaths()).Values.SelectMany(p => p.Operations?.Values.AsEnumerable() ?? [])
            .SelectMany(o => o.Tags?.AsEnumerable() ?? []).Select(t => t.Name).ToHashSet();
        document.Tags = Tags.Where(t => used.Contains(t.Key)).Select(t => new OpenApiTag { Name = t.Key, Description = t.Value }).ToHashSet();

        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        // Left over from the trainer record's times, which the schema setup states as string-or-number.
        document.Components.Schemas.Remove(nameof(System.Text.Json.JsonElement));
        if (!tenant) return;
        document.Components.Schemas[JobSubmissionSchema] = JobSubmission();
        var estimate = JobSubmission();
        estimate.Required = new HashSet<string> { "model_name_or_path" };
        estimate.Description = "A job spec as POST /v1/jobs takes it; dataset may be left out.";
        document.Components.Schemas[EstimateRequestSchema] = estimate;
        Body(document, "/v1/jobs", JobSubmissionSchema);
        Body(document, "/v1/estimates", EstimateRequestSchema);
        // The hub's messages are no operation's answer. Published as components, and as webhooks (what the
        // service sends on its own): each client event of the hub, its message as the body.
        document.Webhooks ??= new Dictionary<string, IOpenApiPathItem>();
        foreach (var (name, type, what) in new[]
                 {
                     (ProgressHubNames.State, typeof(JobStateMessage), "every state transition of a subscribed job, from validating to its final state"),
                     (ProgressHubNames.Progress, typeof(MetricDto), "every logged step of a subscribed job"),
                 })
        {
            document.AddComponent(type.Name, await context.GetOrCreateSchemaAsync(type, null, cancellationToken));
            document.Webhooks[name] = new OpenApiPathItem
            {
                Operations = new Dictionary<HttpMethod, OpenApiOperation>
                {
                    [HttpMethod.Post] = new()
                    {
                        OperationId = $"hub{char.ToUpperInvariant(name[0])}{name[1..]}",
                        Summary = $"Hub event '{name}': {what}",
                        Description = $"Not an HTTP call: the SignalR hub {ProgressHubNames.Path} sends client event `{name}` with this message to connections that called " +
                                      $"{ProgressHubNames.SubscribeJob}(job_id) or {ProgressHubNames.SubscribeTenant}() (authenticated like the API; a browser passes the key as ?access_token=).",
                        Tags = new HashSet<OpenApiTagReference> { new("Hub", document) },
                        RequestBody = new OpenApiRequestBody
                        {
                            Required = true,
                            Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = new OpenApiSchemaReference(type.Name, document) } },
                        },
                        Responses = new OpenApiResponses { ["200"] = new OpenApiResponse { Description = "Delivered (SignalR acknowledges nothing per message)." } },
                    },
                },
            };
        }
        document.Tags.Add(new OpenApiTag { Name = "Hub", Description = $"The SignalR hub {ProgressHubNames.Path}: live state and progress of jobs." });
    }

    private static void Body(OpenApiDocument document, string path, string schema)
    {
        if (document.Paths?.FirstOrDefault(p => p.Key.TrimEnd('/') == path).Value is { Operations: { } ops } && ops.TryGetValue(HttpMethod.Post, out var post))
            post.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = new OpenApiSchemaReference(schema, document) } },
            };
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
