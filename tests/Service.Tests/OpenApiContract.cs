using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;

namespace LongSeqService.Service.Tests;

/// <summary>
/// The service's own OpenAPI documents as a checker: every answer that passes through <see cref="Handler"/> is
/// matched to its operation (method and path template), and its status, media type and body are checked against
/// what that operation declares (the body with JSON Schema 2020-12, which OpenAPI 3.1 schemas are). Component
/// objects are checked closed (no property the document does not name), so an undocumented field fails too.
/// </summary>
public sealed class OpenApiContract
{
    private readonly List<(string Method, string Template, Regex Pattern, JsonObject Operation, JsonObject Components)> _operations = [];
    private readonly Dictionary<string, JsonNode> _defs = [];
    public List<string> Failures { get; } = [];
    public HashSet<string> Seen { get; } = [];

    /// <summary>Schemas left open: problem details carry extensions (traceId, errors, lines), a trainer record any key it logged.</summary>
    private static readonly HashSet<string> Open = ["ProblemDetails", "HttpValidationProblemDetails", "TrainerLogRecord"];

    public OpenApiContract(params JsonObject[] documents)
    {
        foreach (var doc in documents)
        {
            var schemas = doc["components"]?["schemas"]?.AsObject() ?? [];
            foreach (var (name, schema) in schemas)
            {
                var copy = schema!.DeepClone().AsObject();
                if (!Open.Contains(name) && copy["properties"] != null && copy["additionalProperties"] == null) copy["additionalProperties"] = false;
                _defs[$"{doc["info"]!["title"]}:{name}"] = copy;
            }
            foreach (var (template, item) in doc["paths"]!.AsObject())
                foreach (var (method, op) in item!.AsObject())
                    _operations.Add((method.ToUpperInvariant(), template, Pattern(template), op!.AsObject(), doc));
        }
        // Most literal segments first: /v1/jobs/{id}/download before /v1/jobs/{id}/artifacts/{path}.
        _operations.Sort((a, b) => Literals(b.Template).CompareTo(Literals(a.Template)));
    }

    public IEnumerable<string> Operations => _operations.Select(o => $"{o.Method} {o.Template}");

    private static int Literals(string template) => template.Split('/').Count(s => s.Length > 0 && !s.StartsWith('{'));

    /// <summary>A template as a regex over the raw (still encoded) path; the last parameter may hold slashes (catch-all routes).</summary>
    private static Regex Pattern(string template)
    {
        var parts = Regex.Split(template, @"(\{[^}]+\})");
        var last = Array.FindLastIndex(parts, p => p.StartsWith('{'));
        var re = string.Concat(parts.Select((p, i) => p.StartsWith('{') ? (i == last && i == parts.Length - 2 && parts[^1] == "" ? "(.+)" : "([^/]+)") : Regex.Escape(p)));
        return new Regex("^" + re + "$");
    }

    public DelegatingHandler Handler(HttpMessageHandler inner) => new Checking(this, inner);

    private sealed class Checking(OpenApiContract contract, HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            var response = await base.SendAsync(request, ct);
            await response.Content.LoadIntoBufferAsync(ct);
            contract.Check(request.Method.Method, request.RequestUri!.AbsolutePath, (int)response.StatusCode,
                response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsByteArrayAsync(ct));
            return response;
        }
    }

    public void Check(string method, string rawPath, int status, string? mediaType, byte[] body)
    {
        var op = _operations.FirstOrDefault(o => o.Method == method && o.Pattern.IsMatch(rawPath));
        if (op.Operation == null) { Failures.Add($"{method} {rawPath}: no operation in the documents"); return; }
        var where = $"{method} {op.Template} → {status}";
        Seen.Add($"{op.Method} {op.Template}");
        if (op.Operation["responses"]?[status.ToString()] is not JsonObject response) { Failures.Add($"{where}: status not declared"); return; }
        var content = response["content"]?.AsObject();
        if (body.Length == 0 && content == null) return;
        if (content == null) { Failures.Add($"{where}: a {mediaType} body, none declared"); return; }
        if (mediaType == null || content[mediaType] is not JsonObject media) { Failures.Add($"{where}: {mediaType} not declared ({string.Join(", ", content.Select(c => c.Key))})"); return; }
        if (mediaType == "application/octet-stream") return;
        var schema = media["schema"];
        if (schema == null) { Failures.Add($"{where}: no schema"); return; }
        string? error = Validate(schema, $"{op.Components["info"]!["title"]}:", body);
        if (error != null) Failures.Add($"{where}: {error}\n  body: {Truncate(System.Text.Encoding.UTF8.GetString(body))}");
    }

    private string? Validate(JsonNode schema, string docPrefix, byte[] body)
    {
        var root = new JsonObject { ["$schema"] = "https://json-schema.org/draft/2020-12/schema" };
        var defs = new JsonObject();
        foreach (var (key, def) in _defs.Where(d => d.Key.StartsWith(docPrefix, StringComparison.Ordinal)))
            defs[key[docPrefix.Length..]] = def.DeepClone();
        root["$defs"] = defs;
        root["allOf"] = new JsonArray(schema.DeepClone());
        var text = root.ToJsonString().Replace("#/components/schemas/", "#/$defs/", StringComparison.Ordinal);
        var built = JsonSchema.FromText(text, new BuildOptions { SchemaRegistry = new SchemaRegistry() }, new Uri($"https://contract.test/{Guid.NewGuid():N}"));
        JsonElement instance;
        try { instance = JsonDocument.Parse(body).RootElement; }
        catch (JsonException e) { return $"not JSON: {e.Message}"; }
        var result = built.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (result.IsValid) return null;
        return string.Join("; ", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 })
            .Select(d => $"{d.InstanceLocation} ({d.EvaluationPath}): {string.Join(", ", d.Errors!.Values)}").Take(8));
    }

    private static string Truncate(string s) => s.Length <= 600 ? s : s[..600] + "…";
}
