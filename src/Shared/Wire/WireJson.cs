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
        o.NumberHandling = JsonNumberHandling.AllowReadingFromString | JsonNumberHandling.AllowNamedFloatingPointLiterals;
        return o;
    }
}
