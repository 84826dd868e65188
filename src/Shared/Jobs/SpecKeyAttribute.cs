namespace LongSeqService.Shared.Jobs;

/// <summary>
/// Declares one job-spec key on its <see cref="JobSpec"/> property: the property gives the wire name
/// (<c>[JsonPropertyName]</c>), the type, nullability and the default (its initial value); this attribute
/// gives the rest. <see cref="JobSpecKeys"/> reads these, and the parser, the validator, the API's request
/// schema, the dashboard's hints and the README's table are all derived from that one catalog.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SpecKeyAttribute(string group, string description) : Attribute
{
    public string Group { get; } = group;
    public string Description { get; } = description;

    /// <summary>How the default reads when it is not a plain value ("from the model", "(required)").</summary>
    public string? DefaultText { get; set; }

    /// <summary>Inclusive bounds of a number (NaN: none). Every number key has both, so nonsense such as
    /// learning_rate 1e308 is refused at submission instead of failing hours later.</summary>
    public double Min { get; set; } = double.NaN;
    public double Max { get; set; } = double.NaN;

    /// <summary>The minimum itself is not allowed (learning_rate &gt; 0).</summary>
    public bool MinExclusive { get; set; }

    /// <summary>Longest accepted string, in characters.</summary>
    public int MaxLength { get; set; } = 1024;

    /// <summary>A string key whose values are a catalog kept elsewhere: a type with a static
    /// <c>IReadOnlyList&lt;string&gt; Names</c> (the chat templates, the dataset formats).</summary>
    public Type? Catalog { get; set; }

    /// <summary>Where LLaMA-Factory's default differs from ours in a way that changes the result.</summary>
    public string? LlamaFactoryDefault { get; set; }

    /// <summary>Set by the service, so a POST /v1/jobs body may not carry it.</summary>
    public bool ServiceOwned { get; set; }
}
