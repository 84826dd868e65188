using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Memory;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Estimates;

/// <summary>A registered host as the memory check sees it: its slots and the memory of its smallest slot (null: not reported).</summary>
public sealed record HostCapacity(int Slots, long? SlotMemoryBytes);

/// <summary>The outcome of the memory check: the spec with auto resolved, each rank's estimate, an error keyed by
/// field when no host can hold the job, and a note for the job's events.</summary>
public sealed record MemoryCheck(JobSpec Spec, MemoryEstimate? Estimate, SpecError? Error, string? Note, long? BudgetBytes, int? AutoSize);

/// <summary>
/// Whether some registered host can hold a job, by the memory model: each rank's predicted peak against a slot's
/// memory. Resolves <c>sequence_parallel_size: auto</c> to the smallest N that fits a host. Hosts that don't report
/// slot memory are no constraint (and can't choose for auto).
/// </summary>
public static class JobMemory
{
    public static async Task<List<HostCapacity>> HostsAsync(ServiceDb db, CancellationToken ct) =>
        await db.HostSlots.GroupBy(s => s.HostId).Select(g => new HostCapacity(g.Count(), g.Min(s => s.MemoryBytes))).ToListAsync(ct);

    /// <summary>Null when the model can't be read (the spec validator says why).</summary>
    public static MemoryCheck? Check(JobSpec spec, IReadOnlyList<HostCapacity> hosts)
    {
        if (string.IsNullOrWhiteSpace(spec.ModelNameOrPath) || ModelDims.Resolve(spec.ModelNameOrPath, out _) is not { } model) return null;
        int dp = Math.Max(1, spec.DataParallelSize);
        var known = hosts.Where(h => h.SlotMemoryBytes is not null).ToList();
        if (spec.SequenceParallelSize == SequenceParallelAuto.Auto)
        {
            if (known.Count == 0)
                return Refused(spec, null, null, "auto needs a host that reports its slot memory (trainer host --slot-memory 6G) and none does; give a number");
            var choices = known.Select(h => (Host: h, Choice: SequenceParallelAuto.Choose(model, spec, h.SlotMemoryBytes!.Value, h.Slots / dp))).ToList();
            if (choices.Where(c => c.Choice.Size is not null).OrderBy(c => c.Choice.Size).FirstOrDefault() is { Host: not null } best)
            {
                int n = best.Choice.Size!.Value;
                var note = $"sequence_parallel_size auto → {n}: predicted {MemoryEstimate.Format(best.Choice.Estimate.PeakBytes)} per rank, slots of {MemoryEstimate.Format(best.Host.SlotMemoryBytes!.Value)}";
                return new MemoryCheck(spec with { SequenceParallelSize = n }, best.Choice.Estimate, null, note, best.Host.SlotMemoryBytes, n);
            }
            var largest = choices.MaxBy(c => c.Host.SlotMemoryBytes)!;
            var tried = largest.Choice.Estimate;
            return Refused(spec with { SequenceParallelSize = Math.Max(1, largest.Host.Slots / dp) }, tried, largest.Host.SlotMemoryBytes,
                $"no size up to {Math.Max(1, largest.Host.Slots / dp)} fits: each rank is predicted to peak at {MemoryEstimate.Format(tried.PeakBytes)} ({tried.PeakBytes:N0} B) " +
                $"even at {Math.Max(1, largest.Host.Slots / dp)} ranks, and the largest slot holds {MemoryEstimate.Format(largest.Host.SlotMemoryBytes!.Value)} ({largest.Host.SlotMemoryBytes:N0} B); " +
                Suggest(model, spec, largest.Host, dp));
        }
        if (spec.SequenceParallelSize < 1) return null;
        var estimate = MemoryModel.Estimate(model, MemoryRequest.FromSpec(spec));
        var big = hosts.Where(h => h.Slots >= spec.WorldSize).ToList();
        if (big.Count == 0 || big.Any(h => h.SlotMemoryBytes is null || estimate.PeakBytes <= h.SlotMemoryBytes)) return new MemoryCheck(spec, estimate, null, null, big.Max(h => h.SlotMemoryBytes), null);
        var roomiest = big.MaxBy(h => h.SlotMemoryBytes)!;
        return Refused(spec, estimate, roomiest.SlotMemoryBytes,
            $"each rank is predicted to peak at {MemoryEstimate.Format(estimate.PeakBytes)} ({estimate.PeakBytes:N0} B) and the largest slot holds " +
            $"{MemoryEstimate.Format(roomiest.SlotMemoryBytes!.Value)} ({roomiest.SlotMemoryBytes:N0} B); " + Suggest(model, spec, known.MaxBy(h => h.SlotMemoryBytes)!, dp));
    }

    private static MemoryCheck Refused(JobSpec spec, MemoryEstimate? estimate, long? budget, string message) =>
        new(spec, estimate, new SpecError("sequence_parallel_size", message), null, budget, null);

    /// <summary>What would fit the roomiest host: a sequence-parallel size, or one setting changed.</summary>
    private static string Suggest(ModelDims model, JobSpec spec, HostCapacity host, int dp)
    {
        long budget = host.SlotMemoryBytes!.Value;
        var fits = new List<string>();
        if (SequenceParallelAuto.Choose(model, spec, budget, host.Slots / dp) is { Size: { } n, Estimate: var atN })
            fits.Add($"sequence_parallel_size {n} ({MemoryEstimate.Format(atN.PeakBytes)} per rank)");
        var changes = new (string Setting, JobSpec Changed)[]
        {
            ("gradient_checkpointing: true", spec with { GradientCheckpointing = true }),
            ("bf16: true", spec with { Bf16 = true }),
            ("finetuning_type: lora", spec with { FinetuningType = FinetuningType.Lora }),
            ("precompute_ref_logps: true", spec with { PrecomputeRefLogps = true }),
        };
        int size = spec.SequenceParallelSize >= 1 ? spec.SequenceParallelSize : Math.Max(1, host.Slots / dp);
        foreach (var (setting, changed) in changes.Where(c => c.Changed != spec))
        {
            var e = MemoryModel.Estimate(model, MemoryRequest.FromSpec(changed, size));
            if (e.PeakBytes <= budget) fits.Add($"{setting} ({MemoryEstimate.Format(e.PeakBytes)} per rank at sequence_parallel_size {size})");
        }
        return fits.Count > 0 ? "would fit: " + string.Join("; or ", fits) : "nothing short of a shorter cutoff_len or a host with more memory per slot would fit";
    }
}
