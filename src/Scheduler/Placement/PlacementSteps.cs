namespace LongSeqService.Scheduler.Placement;

/// <summary>
/// Placement as small pure steps over a snapshot, like the Kubernetes scheduler framework:
/// <see cref="Filter"/> the hosts that can hold the whole gang, <see cref="Score"/> them (best fit),
/// <see cref="Bind"/> the chosen slots. <see cref="Plan"/> walks the queue by priority, then age.
/// The trainer runs a job as one process on one host, so the whole gang — every SP group, and for now
/// every data-parallel replica too — goes on one host: ring attention's traffic stays on the machine.
/// </summary>
public static class PlacementSteps
{
    public static IEnumerable<HostSnapshot> Filter(PendingJob job, IEnumerable<HostSnapshot> hosts) =>
        hosts.Where(h => h.FreeSlots.Count >= job.WorldSize && HoldsRank(job, h));

    /// <summary>Each slot holds one rank: its memory must cover the rank's predicted peak (unknown on either side: no constraint).</summary>
    public static bool HoldsRank(PendingJob job, HostSnapshot host) =>
        job.RankMemoryBytes is not { } need || host.SlotMemoryBytes is not { } slot || need <= slot;

    /// <summary>Best fit: the host left with the fewest free slots, so large holes stay open for large
    /// gangs. Ties go to the smaller host, then the lower id (deterministic).</summary>
    public static HostSnapshot? Score(PendingJob job, IEnumerable<HostSnapshot> candidates) =>
        candidates.OrderBy(h => h.FreeSlots.Count - job.WorldSize).ThenBy(h => h.TotalSlots).ThenBy(h => h.HostId).FirstOrDefault();

    /// <summary>The lowest free slot indexes of the host, as many as the gang has ranks.</summary>
    public static Binding Bind(PendingJob job, HostSnapshot host) =>
        new(job.JobId, host.HostId, host.FreeSlots.Order().Take(job.WorldSize).ToArray());

    /// <summary>Places what fits, highest priority first and oldest first within a priority. A job that
    /// does not fit now is passed over (smaller jobs behind it may still fit) and waits for the next pass.</summary>
    public static List<Binding> Plan(IEnumerable<PendingJob> queue, IEnumerable<HostSnapshot> hosts)
    {
        var free = hosts.ToDictionary(h => h.HostId);
        var plan = new List<Binding>();
        foreach (var job in queue.OrderByDescending(j => j.Priority).ThenBy(j => j.CreatedAt).ThenBy(j => j.JobId))
        {
            if (job.WorldSize < 1) continue;
            var host = Score(job, Filter(job, free.Values));
            if (host == null) continue;
            var binding = Bind(job, host);
            plan.Add(binding);
            free[host.HostId] = host with { FreeSlots = host.FreeSlots.Except(binding.SlotIndexes).ToArray() };
        }
        return plan;
    }
}
