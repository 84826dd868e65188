using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace LongSeqService.Shared.Jobs;

/// <summary>
/// Turns YAML (CLI), JSON (API, the host's run file) and <c>--key value</c> flags into a typed
/// <see cref="JobSpec"/>, once. Every key is typed by its declaration (<see cref="JobSpecKeys"/>): unknown
/// keys, values of the wrong type, null for a key that cannot be null, strings over the key's length and
/// names outside a closed set are errors naming the key; YAML's "5e-5", a flag's "5e-5" and JSON's 5e-5
/// mean the same. LLaMA-Factory keys that change nothing here give exactly one warning each.
/// </summary>
public static class JobSpecParser
{
    /// <summary>Stop collecting after this many problems: a body of a million bad keys costs no more than 50.</summary>
    public const int MaxErrors = 50;

    /// <summary>The highest ZeRO stage the trainer honours (all of DeepSpeed's: 0 to 3); a DeepSpeed config asking
    /// for more would run at this stage with one warning.</summary>
    public const int HonouredZeroStage = 3;

    /// <summary>Where relative file names in a spec (a <c>deepspeed</c> config) are read from; null where the
    /// caller reads no files (the API: a tenant never names a server file).</summary>
    public delegate string ReadFile(string path);

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
            var key = (k as YamlScalarNode)?.Value ?? "";
            if (v is not YamlScalarNode scalar)
                throw new JobSpecException([new SpecError(key, $"line {v.Start.Line}: expected a single value, got a {(v is YamlSequenceNode ? "list" : "mapping")}" +
                    (key is "dataset" or "eval_dataset" ? " (several datasets are one comma list: a,b)" : ""))]);
            bool isNull = scalar.Style == YamlDotNet.Core.ScalarStyle.Plain && scalar.Value is "" or "~" or "null" or "Null" or "NULL";
            pairs.Add(new(key, isNull ? null : scalar.Value));
        }
        return pairs;
    }

    /// <summary>Builds a spec from raw textual pairs (YAML, then flags; later pairs win).</summary>
    public static JobSpec FromPairs(IEnumerable<KeyValuePair<string, string?>> pairs, ICollection<string>? warnings = null, ReadFile? readFile = null) =>
        Bind(pairs.Select(p => (p.Key, p.Value is null ? null : Raw.OfText(p.Value))), warnings, readFile, []);

    /// <summary>Builds a spec from a JSON object (the API's request body, the host's run file). Keys in
    /// <paramref name="extraAllowed"/> belong to the caller and are skipped.</summary>
    public static JobSpec FromJson(JsonObject body, ICollection<string>? warnings = null, IEnumerable<string>? extraAllowed = null, ReadFile? readFile = null) =>
        Bind(body.Select(kv => (kv.Key, kv.Value is null ? null : Raw.OfJson(kv.Value))), warnings, readFile, extraAllowed?.ToHashSet() ?? []);

    /// <summary>The spec as a JSON object with every key (defaults included), snake_case, for storage, display and the host's run file.</summary>
    public static JsonObject ToJson(JobSpec spec) => JsonSerializer.SerializeToNode(spec, SerializerOptions)!.AsObject();

    /// <summary>For specs this code wrote itself (jsonb, the run file): the enums carry their wire names.</summary>
    public static readonly JsonSerializerOptions SerializerOptions = new();

    /// <summary>Keys that take no value on a command line (<c>--do_train</c>, <c>--bf16</c>): the boolean
    /// keys and LLaMA-Factory's ignored ones.</summary>
    public static readonly IReadOnlySet<string> FlagKeys =
        JobSpecKeys.All.Where(k => k.Type == SpecType.Boolean).Select(k => k.Name).Concat(JobSpecKeys.Ignored.Select(k => k.Name)).ToHashSet();

    /// <summary>A value before typing: text (YAML, flags) or a JSON node.</summary>
    private sealed record Raw(string? Text, JsonNode? Node)
    {
        public static Raw OfText(string s) => new(s, null);
        public static Raw OfJson(JsonNode n) => new(null, n);
    }

    private static JobSpec Bind(IEnumerable<(string Key, Raw? Value)> pairs, ICollection<string>? warnings, ReadFile? readFile, HashSet<string> extra)
    {
        var values = new Dictionary<string, object?>();
        var errors = new List<SpecError>();
        var warned = new HashSet<string>();
        string? deepspeed = null;
        foreach (var (key, raw) in pairs)
        {
            if (errors.Count >= MaxErrors) break;
            if (extra.Contains(key)) continue;
            if (JobSpecKeys.TryGet(key, out var k))
            {
                try { values[key] = Typed(k, raw); }
                catch (FormatException e) { errors.Add(new SpecError(key, e.Message)); }
            }
            else if (JobSpecKeys.IsIgnored(key, out var ignored))
            {
                if (warned.Add(key)) warnings?.Add($"{key}: accepted for LLaMA-Factory compatibility and ignored ({ignored.Why})");
            }
            else if (key == JobSpecKeys.DeepSpeed)
            {
                if (raw?.Node is JsonObject or JsonArray) errors.Add(new SpecError(key, "expected the path of a DeepSpeed config file"));
                else deepspeed = raw is null ? null : raw.Text ?? raw.Node!.ToString();
            }
            else
            {
                var shown = WireNames.Shorten(key);
                var hint = errors.Count < 10 ? JobSpecKeys.Suggest(key) : null;
                errors.Add(new SpecError(shown, "unknown key" + (hint != null ? $"; did you mean '{hint}'?" : "; see the job spec reference in the README")));
            }
        }
        if (deepspeed != null) ApplyDeepSpeed(deepspeed, values, errors, warnings, readFile);
        if (errors.Count >= MaxErrors) errors.Add(new SpecError("(spec)", $"stopped after {MaxErrors} problems"));
        if (errors.Count > 0) throw new JobSpecException(errors);

        var spec = new JobSpec();
        foreach (var k in JobSpecKeys.All)
            if (values.TryGetValue(k.Name, out var v)) k.Property.SetValue(spec, v); // init-only setters are settable by reflection on a fresh record
        return spec;
    }

    /// <summary>A value typed by its key's declaration; FormatException says what would work.</summary>
    private static object? Typed(JobSpecKey k, Raw? raw)
    {
        if (raw is null)
            return k.Nullable ? null : throw new FormatException($"cannot be null; give a value or leave the key out for the default ({k.DefaultText})");
        if (raw.Node is JsonObject or JsonArray)
            throw new FormatException("expected a single value, got " + (raw.Node is JsonArray ? "a list" : "an object") +
                                      (k.Name is "dataset" or "eval_dataset" ? " (several datasets are one comma list: \"a,b\")" : ""));
        var node = raw.Node?.AsValue();
        var kind = node?.GetValueKind();
        string text = (raw.Text ?? (kind == JsonValueKind.String ? node!.GetValue<string>() : node!.ToJsonString())).Trim();
        if (k.Name == "resume_from_checkpoint" && TryBool(text, out var resume)) return resume ? "latest" : null;
        // auto: the smallest size whose per-rank memory fits a slot, chosen by the service at submission (Memory.SequenceParallelAuto).
        if (k.Name == "sequence_parallel_size" && text.Equals("auto", StringComparison.OrdinalIgnoreCase)) return Memory.SequenceParallelAuto.Auto;
        switch (k.Type)
        {
            case SpecType.String:
                if (text.Length > k.MaxLength) throw new FormatException($"longer than {k.MaxLength} characters ({text.Length:N0})");
                if (text.Contains('\0')) throw new FormatException("contains a NUL character");
                if (k.Allowed != null && !k.Allowed.Contains(text)) throw new FormatException(NotOneOf(text, k.Allowed));
                return text;
            case SpecType.Enum:
                var type = Nullable.GetUnderlyingType(k.Property.PropertyType) ?? k.Property.PropertyType;
                return WireNames.TryParse(type, text, out var e) ? e : throw new FormatException(NotOneOf(text, k.Allowed!));
            case SpecType.Boolean:
                if (kind is JsonValueKind.True or JsonValueKind.False) return kind == JsonValueKind.True;
                return TryBool(text, out var b) ? b : throw new FormatException($"expected true or false, got '{WireNames.Shorten(text)}'");
            case SpecType.Integer:
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return InRange(k, l) is null ? (int)l : throw new FormatException(InRange(k, l));
                // 1e4 and 8192.0 are whole numbers too, as Python reads them.
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var whole) && whole == Math.Floor(whole))
                    return InRange(k, whole) is null ? (int)whole : throw new FormatException(InRange(k, whole));
                throw new FormatException($"expected a whole number ({k.Range}), got '{WireNames.Shorten(text)}'");
            case SpecType.Number:
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) || !double.IsFinite(d))
                    throw new FormatException($"expected a number ({k.Range}), got '{WireNames.Shorten(text)}'");
                return InRange(k, d) is null ? d : throw new FormatException(InRange(k, d));
            default:
                throw new InvalidOperationException($"no parser for {k.Type} ({k.Name})");
        }
    }

    /// <summary>Null when <paramref name="x"/> is within the key's declared bounds, else the message.</summary>
    public static string? InRange(JobSpecKey k, double x) =>
        k.Min is { } lo && k.Max is { } hi && (x < lo || x > hi || (k.MinExclusive && x == lo))
            ? $"must be {k.Range} (got {JobSpecKey.Num(x)})" : null;

    /// <summary>Python's strtobool, as Hugging Face's argument parser reads booleans.</summary>
    private static bool TryBool(string text, out bool value)
    {
        switch (text.ToLowerInvariant())
        {
            case "true" or "yes" or "y" or "t" or "1" or "on": value = true; return true;
            case "false" or "no" or "n" or "f" or "0" or "off": value = false; return true;
            default: value = false; return false;
        }
    }

    /// <summary>"'x' is not one of a, b; did you mean 'a'?" — the suggestion only for short values.</summary>
    public static string NotOneOf(string value, IReadOnlyList<string> allowed)
    {
        string? hint = null;
        if (value.Length <= 40)
        {
            var lower = value.ToLowerInvariant();
            var best = allowed.OrderBy(a => EditDistance.Levenshtein(lower, a)).First();
            if (EditDistance.Levenshtein(lower, best) <= 2) hint = best;
        }
        return $"'{WireNames.Shorten(value)}' is not one of {string.Join(", ", allowed)}" + (hint != null ? $"; did you mean '{hint}'?" : "");
    }

    /// <summary>A DeepSpeed config (LLaMA-Factory's examples/deepspeed/ds_z*_config.json): its
    /// zero_optimization.stage becomes zero_stage; an explicit zero_stage must agree with it.</summary>
    private static void ApplyDeepSpeed(string path, Dictionary<string, object?> values, List<SpecError> errors, ICollection<string>? warnings, ReadFile? readFile)
    {
        const string key = JobSpecKeys.DeepSpeed;
        if (readFile is null) { errors.Add(new SpecError(key, "a DeepSpeed config file is read by the CLI only; set zero_stage (0 to 3) instead")); return; }
        DeepSpeedConfig config;
        try { config = DeepSpeedConfig.Parse(readFile(path)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { errors.Add(new SpecError(key, $"cannot read '{WireNames.Shorten(path)}' ({e.Message})")); return; }
        catch (FormatException e) { errors.Add(new SpecError(key, $"{WireNames.Shorten(path)}: {e.Message}")); return; }
        if (values.TryGetValue("zero_stage", out var given) && given is int stage && stage != config.Stage)
        {
            errors.Add(new SpecError("zero_stage", $"{stage} disagrees with deepspeed ({Path.GetFileName(path)} sets ZeRO stage {config.Stage}); drop one of them"));
            return;
        }
        values["zero_stage"] = Math.Min(config.Stage, HonouredZeroStage);
        // One warning for the key, saying everything that is not honoured.
        var notHonoured = new List<string>();
        if (config.Stage > HonouredZeroStage)
            notHonoured.Add($"{Path.GetFileName(path)} asks for ZeRO stage {config.Stage}; stage {HonouredZeroStage} is the highest built here, " +
                            $"so the run uses zero_stage {HonouredZeroStage} — the same training, more memory per rank");
        if (config.Offload.Count > 0)
            notHonoured.Add($"{string.Join(" and ", config.Offload)} offload to the CPU is not done here; everything stays on the device (on CPU there is nothing to offload to)");
        if (notHonoured.Count > 0) warnings?.Add("deepspeed: " + string.Join("; ", notHonoured));
    }
}
