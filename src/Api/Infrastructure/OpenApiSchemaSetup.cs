using System.Reflection;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace LongSeqService.Api.Infrastructure;

/// <summary>A string property marked <see cref="ClosedSetAttribute"/> gets its values as the schema's enum
/// (with null among them when the property may be null), read from the set's one declaration; the job spec's
/// and the problem details' fields get their descriptions from where those are declared.</summary>
internal sealed class OpenApiSchemaSetup : IOpenApiSchemaTransformer
{
    public Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        var set = context.JsonPropertyInfo?.AttributeProvider?.GetCustomAttributes(typeof(ClosedSetAttribute), inherit: false).OfType<ClosedSetAttribute>().FirstOrDefault()
                  ?? (context.ParameterDescription?.ParameterDescriptor as Microsoft.AspNetCore.Mvc.Infrastructure.IParameterInfoParameterDescriptor)?.ParameterInfo.GetCustomAttribute<ClosedSetAttribute>();
        if (set != null) schema.Enum = Values(set, nullable: schema.Type?.HasFlag(JsonSchemaType.Null) == true);
        var described = context.JsonTypeInfo.Type == typeof(JobSpec) ? SpecKeys
            : typeof(Microsoft.AspNetCore.Mvc.ProblemDetails).IsAssignableFrom(context.JsonTypeInfo.Type) ? ProblemFields : null;
        if (described != null)
            foreach (var (name, property) in schema.Properties ?? new Dictionary<string, IOpenApiSchema>())
                if (property is OpenApiSchema p && string.IsNullOrEmpty(p.Description) && described.TryGetValue(name, out var text)) p.Description = text;
        // LLaMA-Factory's times are "h:mm:ss" strings or numbers: said so, instead of an any-value schema whose
        // null-or-anything oneOf no null could pass.
        if (context.JsonTypeInfo.Type == typeof(Shared.Progress.TrainerLogRecord) && schema.Properties is { } record)
            foreach (var (name, what) in new[] { ("elapsed_time", "Time since training started"), ("remaining_time", "Estimated time left") })
                record[name] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String | JsonSchemaType.Number | JsonSchemaType.Null,
                    Description = $"{what}: \"h:mm:ss\" as LLaMA-Factory writes it, or a number of seconds.",
                };
        return Task.CompletedTask;
    }

    /// <summary>The job spec's keys are documented where they are declared (<see cref="JobSpecKeys"/>).</summary>
    private static readonly Dictionary<string, string> SpecKeys = JobSpecKeys.All.ToDictionary(k => k.Name, k => k.Description);

    /// <summary>RFC 9457's members of a problem details body.</summary>
    private static readonly Dictionary<string, string> ProblemFields = new()
    {
        ["type"] = "A URI naming the kind of problem.",
        ["title"] = "A short summary of the kind of problem.",
        ["status"] = "The HTTP status code.",
        ["detail"] = "What went wrong this time, and what would work.",
        ["instance"] = "A URI naming this occurrence.",
        ["errors"] = "The fields (body keys, query parameters, 'file', 'body') at fault, each with its messages.",
    };

    internal static List<JsonNode> Values(ClosedSetAttribute set, bool nullable)
    {
        var values = set.Values.Select(v => (JsonNode)JsonValue.Create(v)!).ToList();
        if (nullable) values.Add(null!);
        return values;
    }
}
