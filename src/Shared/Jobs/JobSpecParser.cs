using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using YamlDotNet.RepresentationModel;

namespace LongSeqService.Shared.Jobs;

/// <summary>
/// Turns YAML (CLI), JSON (API) and <c>--key value</c> overrides into a <see cref="JobSpec"/>.
/// Unknown keys and values of the wrong type are errors naming the key; scalars are typed by the
/// spec's property, so YAML's "5e-5" and JSON's 5e-5 mean the same.
/// </summary>
public static class JobSpecParser
{
    private static readonly Dictionary<string, PropertyInfo> Properties = typeof(JobSpec).GetProperties()
        .Select(p => (p, name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name))
        .Where(x => x.name != null)
        .ToDictionary(x => x.name!, x => x.p);

    /// <summary>Reads a YAML mapping of key → scalar. Returns the raw values as text, in file order.</summary>
    public static List<KeyValuePair<string, string?>> ReadYaml(string yaml, string sourceName)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new JobSpecException([new SpecError(sourceName, $"line {e.Start.Line}: not valid YAML ({e.Message})")]);
        }
        var pairs = new List<KeyValuePair<string, string?>>();
        if (stream.Documents.Count == 0) return pairs;
        if (stream.Documents[0].RootNode is not YamlMappingNode map)
            throw new JobSpecException([new SpecError(sourceName, "expected a mapping of keys to values (key: value per line)")]);
        foreach (var (k, v) in map.Children)
        {
            var key = ((YamlScalarNode)k).Value ?? "";
            if (v is not YamlScalarNode scalar)
                throw new JobSpecException([new SpecError(key, $"line {v.Start.Line}: expected a single value, got a {(v is YamlSequenceNode ? "list" : "mapping")}" +
                    (key == "dataset" ? " (one dataset per job)" : ""))]);
            bool isNull = scalar.Style == YamlDotNet.Core.ScalarStyle.Plain && scalar.Value is "" or "~" or "null" or "Null" or "NULL";
            pairs.Add(new(key, isNull ? null : scalar.Value));
        }
        return pairs;
    }

    /// <summary>Builds a spec from raw textual pairs (YAML, then CLI overrides; later pairs win).</summary>
    public static JobSpec FromPairs(IEnumerable<KeyValuePair<string, string?>> pairs, ICollection<string>? warnings = null)
    {
        var obj = new JsonObject();
        var errors = new List<SpecError>();
        foreach (var (key, text) in pairs)
        {
            if (!CheckKey(key, errors, warnings)) continue;
            try { obj[key] = ParseScalar(key, text); }
            catch (FormatException e) { errors.Add(new SpecError(key, e.Message)); }
        }
        if (errors.Count > 0) throw new JobSpecException(errors);
        return Deserialize(obj);
    }

    /// <summary>Builds a spec from a JSON object (the API's request body).</summary>
    public static JobSpec FromJson(JsonObject body, ICollection<string>? warnings = null, IEnumerable<string>? extraAllowed = null)
    {
        var errors = new List<SpecError>();
        var allowed = extraAllowed?.ToHashSet() ?? [];
        var obj = new JsonObject();
        foreach (var (key, node) in body)
        {
            if (allowed.Contains(key) || !CheckKey(key, errors, warnings)) continue;
            if (node is JsonObject or JsonArray) { errors.Add(new SpecError(key, "expected a single value, got " + (node is JsonArray ? "a list" : "an object"))); continue; }
            try { obj[key] = node is null ? null : ParseScalar(key, node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : node.ToJsonString()); }
            catch (FormatException e) { errors.Add(new SpecError(key, e.Message)); }
        }
        if (errors.Count > 0) throw new JobSpecException(errors);
        return Deserialize(obj);
    }

    /// <summary>The spec as a JSON object with every key (defaults included), snake_case, for storage and display.</summary>
    public static JsonObject ToJson(JobSpec spec) => JsonSerializer.SerializeToNode(spec, SerializerOptions)!.AsObject();

    public static readonly JsonSerializerOptions SerializerOptions = new() { NumberHandling = JsonNumberHandling.AllowReadingFromString };

    private static bool CheckKey(string key, List<SpecError> errors, ICollection<string>? warnings)
    {
        if (Properties.ContainsKey(key)) return true;
        if (JobSpecKeys.IgnoredLlamaFactoryKeys.Contains(key))
        {
            warnings?.Add($"{key}: accepted for LLaMA-Factory compatibility and ignored");
            return false;
        }
        var hint = JobSpecKeys.Suggest(key);
        errors.Add(new SpecError(key, "unknown key" + (hint != null ? $"; did you mean '{hint}'?" : "; see the job spec reference in the README")));
        return false;
    }

    private static JsonNode? ParseScalar(string key, string? text)
    {
        var type = Properties[key].PropertyType;
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (text is null)
        {
            if (Nullable.GetUnderlyingType(type) != null || !type.IsValueType) return null;
            throw new FormatException($"needs a value (default {Default(key)})");
        }
        text = text.Trim();
        if (key == "resume_from_checkpoint" && bool.TryParse(text, out var resume)) return resume ? JsonValue.Create("latest") : null;
        if (key == "sequence_parallel_size" && text == "auto") return JsonValue.Create(Memory.SequenceParallelAuto.Auto);   // chosen at submission from the memory model
        if (target == typeof(string)) return JsonValue.Create(text);
        if (target == typeof(bool))
            return bool.TryParse(text, out var b) ? JsonValue.Create(b) : throw new FormatException($"expected true or false, got '{text}'");
        if (target == typeof(int))
        {
            if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) && l is >= int.MinValue and <= int.MaxValue) return JsonValue.Create((int)l);
            // 1e4 and 8192.0 are integers too, as Python would read them.
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return JsonValue.Create((int)d);
            throw new FormatException($"expected a whole number, got '{text}'");
        }
        if (target == typeof(double))
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
                ? JsonValue.Create(d) : throw new FormatException($"expected a number, got '{text}'");
        throw new InvalidOperationException($"no parser for {target} ({key})");
    }

    private static string Default(string key) => JobSpecKeys.TryGet(key, out var k) ? k.Default : "?";

    private static JobSpec Deserialize(JsonObject obj) => obj.Deserialize<JobSpec>(SerializerOptions)!;
}
