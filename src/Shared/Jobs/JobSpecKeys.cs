using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;

namespace LongSeqService.Shared.Jobs;

/// <summary>The kind of value a key takes, as JSON Schema names it.</summary>
public enum SpecType { String, Integer, Number, Boolean, Enum }

/// <summary>One key of the job spec, read from its declaration on <see cref="JobSpec"/>.</summary>
public sealed record JobSpecKey(string Name, string Group, string Description, SpecType Type, bool Nullable, object? Default,
    string DefaultText, IReadOnlyList<string>? Allowed, double? Min, double? Max, bool MinExclusive, int MaxLength,
    string? LlamaFactoryDefault, bool ServiceOwned, PropertyInfo Property)
{
    /// <summary>"1 to 1024", "> 0 and ≤ 1": the bounds as a message says them.</summary>
    public string Range => (Min, Max) switch
    {
        ({ } lo, { } hi) when MinExclusive => $"> {Num(lo)} and ≤ {Num(hi)}",
        ({ } lo, { } hi) => $"{Num(lo)} to {Num(hi)}",
        _ => "",
    };

    public static string Num(double x) => x.ToString(Math.Abs(x) >= 1e6 && x == Math.Floor(x) ? "0.###e+0" : "0.#######", CultureInfo.InvariantCulture);
}

/// <summary>A LLaMA-Factory key that copied configs carry and that changes nothing here: accepted with one
/// warning saying why it is ignored.</summary>
public sealed record IgnoredKey(string Name, string Why);

/// <summary>
/// Every key the job spec accepts, derived from the declarations on <see cref="JobSpec"/>, plus the
/// LLaMA-Factory keys accepted with a warning. Drives the parser, the validator, unknown-key errors, the
/// API's schema and the README's table.
/// </summary>
public static class JobSpecKeys
{
    public static readonly IReadOnlyList<JobSpecKey> All = Read();

    /// <summary>LLaMA-Factory's DeepSpeed config file: read by the CLI for its ZeRO stage (→ zero_stage).</summary>
    public const string DeepSpeed = "deepspeed";

    /// <summary>Keys of LLaMA-Factory's examples (examples/train_*, 360-LLaMA-Factory's 360-example.sh) that
    /// change nothing here.</summary>
    public static readonly IReadOnlyList<IgnoredKey> Ignored =
    [
        new("do_train", "training is what `trainer train` and POST /v1/jobs do"),
        new("do_eval", "the evaluation loss runs whenever val_size or eval_dataset is set"),
        new("plot_loss", "the loss curve is in trainer_log.jsonl and on the dashboard"),
        new("cache_dir", "nothing is downloaded, so there is no download cache"),
        new("overwrite_cache", "tokenized datasets are not cached"),
        new("preprocessing_num_workers", "tokenization runs on the trainer's own threads"),
        new("dataloader_num_workers", "batches are built on the trainer's own threads"),
        new("ddp_timeout", "ranks wait for each other without a timeout"),
        new("report_to", "metrics go to trainer_log.jsonl and the service"),
        new("logging_dir", "logs go to output_dir/trainer_log.jsonl"),
        new("run_name", "the service names runs by job id"),
        new("trust_remote_code", "no model code is ever run; architectures are built in"),
        new("flash_attn", "attention kernels are chosen by sequence_parallel_mode"),
        new("attn", "attention kernels are chosen by sequence_parallel_mode"),
        new("enable_liger_kernel", "the LM head and loss are always fused and chunked"),
        new("use_unsloth_gc", "gradient checkpointing is gradient_checkpointing"),
        new("disable_gradient_checkpointing", "checkpointing here is off unless gradient_checkpointing: true"),
        new("save_strategy", "checkpoints are written every save_steps"),
        new("eval_strategy", "evaluation runs every eval_steps, or at the end"),
        new("evaluation_strategy", "evaluation runs every eval_steps, or at the end"),
        new("save_only_model", "checkpoints always hold what an exact resume needs"),
        new("fp16", "fp16 is not used (bf16 or fp32)"),
    ];

    /// <summary>The chat templates <c>template</c> accepts (the template catalog is their source).</summary>
    public static IReadOnlyList<string> Templates => Data.ChatTemplate.Names;

    private static readonly Dictionary<string, JobSpecKey> ByName = All.ToDictionary(k => k.Name);
    private static readonly Dictionary<string, IgnoredKey> IgnoredByName = Ignored.ToDictionary(k => k.Name);

    public static bool TryGet(string name, out JobSpecKey key) => ByName.TryGetValue(name, out key!);
    public static bool IsIgnored(string name, out IgnoredKey key) => IgnoredByName.TryGetValue(name, out key!);

    /// <summary>Longest key name; an unknown key much longer than this cannot be a typo of one.</summary>
    private static readonly int LongestName = All.Max(k => k.Name.Length);

    /// <summary>The closest valid key by edit distance, when it is close enough to be a likely typo. Bounded:
    /// a name longer than any key plus the distance allowed is never compared (a 20 MB key costs nothing).</summary>
    public static string? Suggest(string unknown)
    {
        if (unknown.Length == 0 || unknown.Length > 2 * LongestName) return null;
        var lower = unknown.ToLowerInvariant();
        var best = All.Select(k => (k.Name, d: EditDistance.Levenshtein(lower, k.Name))).OrderBy(x => x.d).First();
        return best.d <= Math.Max(2, unknown.Length / 3) || best.Name.Contains(lower) || lower.Contains(best.Name) ? best.Name : null;
    }

    private static List<JobSpecKey> Read()
    {
        var defaults = new JobSpec();
        var keys = new List<JobSpecKey>();
        foreach (var p in typeof(JobSpec).GetProperties().OrderBy(p => p.MetadataToken))
        {
            var name = p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name;
            if (name == null) continue;
            var a = p.GetCustomAttribute<SpecKeyAttribute>() ?? throw new InvalidOperationException($"JobSpec.{p.Name} ({name}) has no [SpecKey] declaration");
            var underlying = System.Nullable.GetUnderlyingType(p.PropertyType);
            var t = underlying ?? p.PropertyType;
            bool nullable = underlying != null || new NullabilityInfoContext().Create(p).WriteState == NullabilityState.Nullable;
            var type = t == typeof(string) ? SpecType.String : t == typeof(int) ? SpecType.Integer : t == typeof(double) ? SpecType.Number
                     : t == typeof(bool) ? SpecType.Boolean : t.IsEnum ? SpecType.Enum
                     : throw new InvalidOperationException($"JobSpec.{p.Name}: no spec type for {t}");
            IReadOnlyList<string>? allowed = t.IsEnum ? WireNames.Names(t)
                : a.Catalog?.GetProperty("Names", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as IReadOnlyList<string>;
            if (a.Catalog != null && allowed == null) throw new InvalidOperationException($"{a.Catalog} has no static Names");
            var value = p.GetValue(defaults);
            bool numeric = type is SpecType.Integer or SpecType.Number;
            if (numeric && (double.IsNaN(a.Min) || double.IsNaN(a.Max))) throw new InvalidOperationException($"{name}: a number key needs Min and Max");
            keys.Add(new JobSpecKey(name, a.Group, a.Description, type, nullable, value, a.DefaultText ?? DefaultText(value),
                allowed, numeric ? a.Min : null, numeric ? a.Max : null, a.MinExclusive, a.MaxLength, a.LlamaFactoryDefault, a.ServiceOwned, p));
        }
        return keys;
    }

    private static string DefaultText(object? value) => value switch
    {
        null => "none",
        bool b => b ? "true" : "false",
        double d => JobSpecKey.Num(d),
        int i => i.ToString(CultureInfo.InvariantCulture),
        Enum e => WireNames.Names(e.GetType())[Convert.ToInt32(e, CultureInfo.InvariantCulture)],
        _ => value.ToString() ?? "",
    };
}
