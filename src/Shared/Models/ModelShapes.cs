using System.Reflection;

namespace LongSeqService.Shared.Models;

/// <summary>
/// The config.json of common models as data (Models/Shapes/*.json, embedded), named by
/// <c>shape:NAME</c> — e.g. <c>shape:qwen2.5-0.5b</c>. A shape is architecture only: trainers build it
/// with random weights, estimators read it; nothing is downloaded. The files are the published
/// Hugging Face configs of those models (the fields that decide shape and memory).
/// </summary>
public static class ModelShapes
{
    public const string Prefix = "shape:";

    private static readonly Assembly Self = typeof(ModelShapes).Assembly;
    private const string ResourcePrefix = "LongSeqService.Shared.Models.Shapes.";

    /// <summary>Every shape name (without the prefix), sorted.</summary>
    public static IReadOnlyList<string> Names { get; } = Self.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..^".json".Length]).Order(StringComparer.Ordinal).ToList();

    public static bool IsShape(string modelNameOrPath) => modelNameOrPath.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The config.json text of <c>shape:NAME</c> (or of a bare NAME); null when there is no such shape.</summary>
    public static string? TryGetConfigJson(string name)
    {
        if (IsShape(name)) name = name[Prefix.Length..];
        if (!Names.Contains(name)) return null;
        using var stream = Self.GetManifestResourceStream(ResourcePrefix + name + ".json")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>A message naming the shapes that exist, for an unknown one.</summary>
    public static string Unknown(string name) =>
        $"unknown model shape '{name}'; shapes are {string.Join(", ", Names.Select(n => Prefix + n))}";
}
