using System.Text.Json;
using System.Text.Json.Serialization;

namespace LongSeqService.Shared.Wire;

/// <summary>The API speaks snake_case JSON (like the OpenAI and Together fine-tuning APIs); the API,
/// the trainer host and tests all use these options so a record means the same bytes everywhere.</summary>
public static class WireJson
{
    public static readonly JsonSerializerOptions Options = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        o.DictionaryKeyPolicy = null;
        o.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        // Numbers are JSON numbers, both ways: no "1.5" strings, no NaN/Infinity literals. Anything laxer
        // makes every number of the OpenAPI document a number-or-string schema, and generated clients lose them.
        o.NumberHandling = JsonNumberHandling.Strict;
        return o;
    }
}
