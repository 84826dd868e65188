using System.Reflection;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Wire;

/// <summary>
/// Marks a string on the wire whose values are a closed set declared elsewhere: an enum with wire names
/// (<see cref="WireNames"/>) or a static class of constants with an <c>All</c> (or <c>Names</c>) list (<see cref="JobStates"/>).
/// The OpenAPI document turns it into the schema's <c>enum</c>, read from that one declaration.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Parameter | AttributeTargets.Field)]
public sealed class ClosedSetAttribute(Type declaration) : Attribute
{
    public Type Declaration { get; } = declaration;

    public IReadOnlyList<string> Values => Of(Declaration);

    public static IReadOnlyList<string> Of(Type declaration)
    {
        if (declaration.IsEnum) return WireNames.Names(declaration);
        foreach (var name in new[] { "All", "Names" })
        {
            var value = declaration.GetProperty(name, BindingFlags.Public | BindingFlags.Static)?.GetValue(null)
                        ?? declaration.GetField(name, BindingFlags.Public | BindingFlags.Static)?.GetValue(null);
            if (value is IEnumerable<string> values) return [.. values];
        }
        throw new InvalidOperationException($"{declaration.Name} is neither an enum nor a class with a static All or Names list");
    }
}
