using System.Reflection;
using System.Text.Json.Serialization;

namespace LongSeqService.Shared.Jobs;

// The closed sets of the job spec. Each member carries its wire name (LLaMA-Factory's spelling); the
// parser, the validator, the API's schema and the README's table all read them from here.

/// <summary><c>stage</c>: what the run optimises.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Stage>))]
public enum Stage
{
    [JsonStringEnumMemberName("sft")] Sft,
    [JsonStringEnumMemberName("dpo")] Dpo,
    [JsonStringEnumMemberName("pt")] Pt,
}

/// <summary><c>finetuning_type</c>: all weights, or LoRA adapters only.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FinetuningType>))]
public enum FinetuningType
{
    [JsonStringEnumMemberName("full")] Full,
    [JsonStringEnumMemberName("lora")] Lora,
}

/// <summary><c>sequence_parallel_mode</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SequenceParallelMode>))]
public enum SequenceParallelMode
{
    /// <summary>Ring attention over the zigzag layout (rank r holds chunks r and 2N−1−r: balanced causal work).</summary>
    [JsonStringEnumMemberName("zigzag-ring")] ZigzagRing,
    /// <summary>Ring attention over the contiguous layout (unbalanced; for comparison).</summary>
    [JsonStringEnumMemberName("ring")] Ring,
    /// <summary>All-to-all to head-sharded, local attention; contiguous layout.</summary>
    [JsonStringEnumMemberName("ulysses")] Ulysses,
    /// <summary>Ulysses within groups of <c>ulysses_degree</c> ranks × zigzag ring across them.</summary>
    [JsonStringEnumMemberName("hybrid")] Hybrid,
}

/// <summary><c>launch</c>: ranks as threads of one process, or one process per rank.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Launch>))]
public enum Launch
{
    [JsonStringEnumMemberName("threads")] Threads,
    [JsonStringEnumMemberName("processes")] Processes,
}

/// <summary><c>lr_scheduler_type</c>: the schedule after warm-up (Hugging Face's names).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LrSchedulerType>))]
public enum LrSchedulerType
{
    [JsonStringEnumMemberName("cosine")] Cosine,
    [JsonStringEnumMemberName("linear")] Linear,
    [JsonStringEnumMemberName("constant")] Constant,
}

/// <summary><c>device</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ComputeDevice>))]
public enum ComputeDevice
{
    [JsonStringEnumMemberName("cpu")] Cpu,
    [JsonStringEnumMemberName("cuda")] Cuda,
}

/// <summary><c>pref_loss</c>: the DPO loss.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PrefLoss>))]
public enum PrefLoss
{
    [JsonStringEnumMemberName("sigmoid")] Sigmoid,
}

/// <summary>Wire names of the spec's enums, both ways.</summary>
public static class WireNames
{
    /// <summary>The member's wire name: <c>SequenceParallelMode.ZigzagRing.Wire()</c> is "zigzag-ring".</summary>
    public static string Wire<T>(this T value) where T : struct, Enum => Names(typeof(T))[Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture)];

    /// <summary>Every wire name of an enum type, in member order (members are 0, 1, 2, …).</summary>
    public static IReadOnlyList<string> Names(Type enumType) =>
        enumType.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => f.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? f.Name.ToLowerInvariant()).ToArray();

    /// <summary>The member whose wire name is <paramref name="name"/>; false when none is.</summary>
    public static bool TryParse(Type enumType, string name, out object value)
    {
        int i = Names(enumType).ToList().IndexOf(name);
        value = i >= 0 ? Enum.ToObject(enumType, i) : null!;
        return i >= 0;
    }

    public static T Parse<T>(string name) where T : struct, Enum =>
        TryParse(typeof(T), name, out var v) ? (T)v
        : throw new ArgumentException($"'{Shorten(name)}' is not one of {string.Join(", ", Names(typeof(T)))}");

    /// <summary>A value as it may appear in a message: never more than 60 characters of it.</summary>
    public static string Shorten(string value) => value.Length <= 60 ? value : value[..57] + $"… ({value.Length:N0} characters)";
}
