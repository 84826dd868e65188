using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Api.OpenAi;

/// <summary>
/// POST /v1/fine_tuning/jobs's body mapped onto the native job spec (the same submission, the same checks, the same
/// job): <c>model</c> → model_name_or_path, <c>training_file</c> → dataset, <c>validation_file</c> → eval_dataset,
/// <c>method.type</c> supervised|dpo → stage sft|dpo, its hyperparameters <c>n_epochs</c> → num_train_epochs,
/// <c>batch_size</c> → per_device_train_batch_size, <c>learning_rate_multiplier</c> → learning_rate (× the spec's default),
/// <c>beta</c> → pref_beta ("auto" keeps the default), <c>seed</c> → seed. The long-context keys OpenAI has no word for
/// (sequence_parallel_size, cutoff_len, finetuning_type, max_steps, … any job-spec key) go in the <c>longseq</c> object.
/// <see cref="Mapped.ParamOf"/> names a native field's error by what the client sent.
/// </summary>
public static class FineTuningRequest
{
    public sealed record Mapped(JsonObject Native, string? Suffix, string? Metadata, IReadOnlyDictionary<string, string> Params)
    {
        public string ParamOf(string nativeKey) => Params.TryGetValue(nativeKey, out var p) ? p : nativeKey;
    }

    public sealed class Invalid(string param, string message) : Exception(message) { public string Param { get; } = param; }

    private static readonly string[] Keys = ["model", "training_file", "validation_file", "hyperparameters", "method", "suffix", "seed", "metadata", "integrations", "longseq"];
    private static readonly string[] Methods = ["supervised", "dpo"];
    public const int MaxSuffix = 64, MaxMetadata = 16, MaxMetadataKey = 64, MaxMetadataValue = 512;

    /// <exception cref="Invalid">The first parameter at fault.</exception>
    public static Mapped Map(JsonObject body)
    {
        foreach (var (key, _) in body)
            if (!Keys.Contains(key)) throw new Invalid(key, $"unknown parameter; the parameters are {string.Join(", ", Keys)} (job-spec keys go in 'longseq')");
        var native = new JsonObject();
        var names = new Dictionary<string, string>
        {
            ["model_name_or_path"] = "model", ["dataset"] = "training_file", ["eval_dataset"] = "validation_file", ["stage"] = "method.type", ["seed"] = "seed",
        };
        native["model_name_or_path"] = RequiredString(body, "model");
        native["dataset"] = RequiredString(body, "training_file");
        if (OptionalString(body, "validation_file") is { } validation) native["eval_dataset"] = validation;
        if (body["seed"] is { } seed)
        {
            if (seed.GetValueKind() != JsonValueKind.Number || !seed.AsValue().TryGetValue<int>(out var s) || s < 0) throw new Invalid("seed", "a whole number ≥ 0");
            native["seed"] = s;
        }

        var (type, hyper, hyperPath) = Method(body);
        native["stage"] = type == "dpo" ? "dpo" : "sft";
        if (hyper != null)
            foreach (var (key, value) in hyper)
            {
                var param = $"{hyperPath}.{key}";
                var (nativeKey, allowed) = key switch
                {
                    "n_epochs" => ("num_train_epochs", true),
                    "batch_size" => ("per_device_train_batch_size", true),
                    "learning_rate_multiplier" => ("learning_rate", true),
                    "beta" => ("pref_beta", type == "dpo"),
                    _ => (null, false),
                };
                if (nativeKey == null || !allowed) throw new Invalid(param, $"not a hyperparameter of {type}; use n_epochs, batch_size, learning_rate_multiplier{(type == "dpo" ? ", beta" : "")}");
                if (value is JsonValue v && v.TryGetValue<string>(out var text) && text == "auto") continue; // the spec's default
                if (value?.GetValueKind() != JsonValueKind.Number) throw new Invalid(param, "a number, or \"auto\"");
                double x = value.GetValue<double>();
                native[nativeKey] = key switch
                {
                    "learning_rate_multiplier" => x * FineTuningView.BaseLearningRate,
                    "batch_size" when x == Math.Floor(x) => (int)x,
                    _ => x,
                };
                names[nativeKey] = param;
            }

        if (body["longseq"] is { } extension)
        {
            if (extension is not JsonObject longseq) throw new Invalid("longseq", "an object of job-spec keys (sequence_parallel_size, cutoff_len, finetuning_type, …)");
            foreach (var (key, value) in longseq)
            {
                if (native.ContainsKey(key)) throw new Invalid($"longseq.{key}", $"already given as {names.GetValueOrDefault(key, key)}; give it once");
                native[key] = value?.DeepClone();
                names[key] = $"longseq.{key}";
            }
        }
        if (body["integrations"] is { } integrations && integrations is not JsonArray { Count: 0 })
            throw new Invalid("integrations", "no integrations are supported here (metrics are in the job's events and at /v1/jobs/{id}/metrics)");

        var suffix = OptionalString(body, "suffix");
        if (suffix is { Length: > MaxSuffix }) throw new Invalid("suffix", $"at most {MaxSuffix} characters");
        return new Mapped(native, suffix, Metadata(body), names);
    }

    /// <summary>The method's type and its hyperparameters (with their path), or the legacy top-level <c>hyperparameters</c>.</summary>
    private static (string Type, JsonObject? Hyper, string Path) Method(JsonObject body)
    {
        var legacy = body["hyperparameters"];
        if (legacy is not (null or JsonObject)) throw new Invalid("hyperparameters", "an object");
        if (body["method"] is not { } m) return ("supervised", legacy as JsonObject, "hyperparameters");
        if (m is not JsonObject method) throw new Invalid("method", "an object: {\"type\": \"supervised\" | \"dpo\", …}");
        var type = RequiredString(method, "type", "method.type");
        if (!Methods.Contains(type)) throw new Invalid("method.type", $"'{type}' is not supported; use supervised or dpo");
        foreach (var (key, _) in method)
            if (key != "type" && key != type) throw new Invalid($"method.{key}", $"not part of a {type} method; give method.{type}.hyperparameters");
        if (legacy != null) throw new Invalid("hyperparameters", $"give the hyperparameters in method.{type}.hyperparameters only");
        if (method[type] is not { } settings) return (type, null, $"method.{type}.hyperparameters");
        if (settings is not JsonObject o || o.Any(kv => kv.Key != "hyperparameters")) throw new Invalid($"method.{type}", "an object with 'hyperparameters'");
        if (o["hyperparameters"] is not (null or JsonObject)) throw new Invalid($"method.{type}.hyperparameters", "an object");
        return (type, o["hyperparameters"] as JsonObject, $"method.{type}.hyperparameters");
    }

    private static string? Metadata(JsonObject body)
    {
        if (body["metadata"] is not { } m) return null;
        if (m is not JsonObject o || o.Count > MaxMetadata) throw new Invalid("metadata", $"an object of at most {MaxMetadata} string values");
        foreach (var (key, value) in o)
            if (key.Length > MaxMetadataKey || value is not JsonValue v || !v.TryGetValue<string>(out var s) || s.Length > MaxMetadataValue)
                throw new Invalid($"metadata.{key}", $"keys of at most {MaxMetadataKey} characters, string values of at most {MaxMetadataValue}");
        return o.ToJsonString();
    }

    private static string RequiredString(JsonObject o, string key, string? param = null) =>
        OptionalString(o, key, param) is { Length: > 0 } s ? s : throw new Invalid(param ?? key, "required: a string");

    private static string? OptionalString(JsonObject o, string key, string? param = null) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new Invalid(param ?? key, "a string"),
    };
}
