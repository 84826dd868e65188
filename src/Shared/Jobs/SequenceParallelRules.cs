namespace LongSeqService.Shared.Jobs;

/// <summary>
/// Which sequence-parallel layouts a model's head counts allow, and what to suggest when one does not.
/// Ring modes split tokens and work with any head count; Ulysses splits heads, so the query heads must
/// divide among the ranks (K/V heads are repeated when there are fewer); hybrid runs Ulysses over a
/// sub-group of size u (u divides both N and the heads) and a ring over the N/u sub-groups.
/// </summary>
public static class SequenceParallelRules
{
    /// <summary>Returns null when the layout works, otherwise a message saying what would.</summary>
    public static string? Check(SequenceParallelMode mode, int n, int heads, int kvHeads, int? ulyssesDegree)
    {
        if (n < 1) return $"sequence_parallel_size must be at least 1 (got {n})";
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0)
            return $"num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kvHeads})";
        switch (mode)
        {
            case SequenceParallelMode.ZigzagRing or SequenceParallelMode.Ring:
                return ulyssesDegree is null ? null : $"ulysses_degree applies only to sequence_parallel_mode 'hybrid' (mode is '{mode.Wire()}')";
            case SequenceParallelMode.Ulysses:
                if (ulyssesDegree is not null) return "ulysses_degree applies only to sequence_parallel_mode 'hybrid'";
                if (heads % n == 0) return null;
                var sizes = Divisors(heads).Where(d => d > 1).Take(4).ToList();
                int auto = AutoUlyssesDegree(n, heads);
                var alternatives = auto > 1 ? $"use 'hybrid' (ulysses_degree {auto} × ring {n / auto}) or 'zigzag-ring'" : "use 'hybrid' (a pure ring here) or 'zigzag-ring'";
                return $"sequence_parallel_mode 'ulysses' needs num_attention_heads ({heads}) divisible by sequence_parallel_size ({n}); " +
                       alternatives + (sizes.Count > 0 ? $", or sequence_parallel_size {Or(sizes)}" : "");
            case SequenceParallelMode.Hybrid:
                if (ulyssesDegree is not { } u) return null; // chosen automatically
                if (u < 1 || n % u != 0 || heads % u != 0)
                    return $"ulysses_degree ({u}) must divide both sequence_parallel_size ({n}) and num_attention_heads ({heads}); " +
                           $"use {Or(Divisors(n).Where(d => heads % d == 0))} (or leave it unset to choose automatically)";
                return null;
            default:
                return $"unknown mode {mode}; use one of {string.Join(", ", WireNames.Names(typeof(SequenceParallelMode)))}";
        }
    }

    /// <summary>hybrid's automatic choice: the largest divisor of N that also divides the head count.</summary>
    public static int AutoUlyssesDegree(int n, int heads) => Divisors(n).Where(d => heads % d == 0).Max();

    /// <summary>"2, 7 or 14".</summary>
    public static string Or(IEnumerable<int> values)
    {
        var list = values.Select(v => v.ToString()).ToList();
        return list.Count <= 1 ? string.Join("", list) : $"{string.Join(", ", list.Take(list.Count - 1))} or {list[^1]}";
    }

    public static IEnumerable<int> Divisors(int x) => Enumerable.Range(1, Math.Max(1, x)).Where(d => x % d == 0);
}
