using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Memory;

/// <summary>
/// <c>sequence_parallel_size: auto</c>: the smallest N whose predicted per-rank peak fits a slot's memory,
/// among the sizes the mode and the model's heads allow and the host's slots can hold.
/// </summary>
public static class SequenceParallelAuto
{
    /// <summary>The spec value meaning "choose for me" (the job spec holds it as 0 until it is resolved).</summary>
    public const int Auto = 0;

    public sealed record Choice(int? Size, MemoryEstimate Estimate);

    /// <param name="maxSize">The most ranks one SP group can have: a host's slots ÷ data_parallel_size.</param>
    /// <returns>The smallest fitting N with its estimate, or no size with the estimate of the largest N tried (the closest to fitting).</returns>
    public static Choice Choose(ModelDims model, JobSpec spec, long budgetBytes, int maxSize)
    {
        MemoryEstimate? last = null;
        foreach (var n in Candidates(model, spec, maxSize))
        {
            last = MemoryModel.Estimate(model, MemoryRequest.FromSpec(spec, n));
            if (last.PeakBytes <= budgetBytes) return new Choice(n, last);
        }
        return new Choice(null, last ?? MemoryModel.Estimate(model, MemoryRequest.FromSpec(spec, 1)));
    }

    /// <summary>1..maxSize where the layout works (Ulysses: heads divisible) and every rank holds tokens.</summary>
    public static IEnumerable<int> Candidates(ModelDims model, JobSpec spec, int maxSize) =>
        Enumerable.Range(1, Math.Max(1, maxSize)).Where(n =>
            2 * n <= Math.Max(2, spec.CutoffLen) &&
            SequenceParallelRules.Check(spec.SequenceParallelMode, n, model.Heads, model.KvHeads, spec.UlyssesDegree is { } u && n % u == 0 ? u : null) is null);
}
