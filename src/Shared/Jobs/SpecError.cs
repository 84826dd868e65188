namespace LongSeqService.Shared.Jobs;

/// <summary>A problem with one field of a job spec: the key at fault and what would work.</summary>
public sealed record SpecError(string Field, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>Thrown by the CLI path when a spec cannot be used; carries every problem found.</summary>
public sealed class JobSpecException(IReadOnlyList<SpecError> errors)
    : Exception(string.Join("; ", errors.Select(e => e.ToString())))
{
    public IReadOnlyList<SpecError> Errors { get; } = errors;
}
