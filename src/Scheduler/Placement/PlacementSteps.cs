namespace LongSeqService.Scheduler.Placement;

/// <summary>
/// Placement as small pure steps over a snapshot, like the Kubernetes scheduler framework:
/// <see cref="Filter"/> the hosts that can hold the whole gang, <see cref="Score"/> them (best fit),
/// <see cref="Bind"/> the chosen slots. <see cref="Plan"/> walks the queue by priority, then age.
/// A gang goes on one host when one has room: ring attention's traffic stays on the machine. With
/// <c>spanHosts</c> a gang that no host can hold is split over several (<see cref="Span"/>), for trainers
/// that run one MPI world across hosts (<c>mpi_hosts</c>): only hosts that join spans, and only jobs that may span.
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

    /// <summary>
    /// A gang that no single host can hold, over several hosts that join spans (<see cref="HostSnapshot.JoinsSpans"/>),
    /// or null when all of them together cannot (or the job may not span).
    /// World rank = dp_rank × sp + sp_rank, and the ranks fill the chosen hosts in order, so: when the hosts
    /// have room for whole SP groups, each host takes whole groups — every ring stays on one host and only
    /// the data-parallel replicas (one gradient all-reduce per step) cross hosts — from the hosts with room
    /// for the most groups, so the gang touches as few hosts as it can. Only when the groups themselves are
    /// larger than what the hosts have free do rings cross hosts; the hosts with the most free slots are then
    /// filled first, which keeps each ring on as few hosts as this greedy choice can.
    /// </summary>
    public static Binding? Span(PendingJob job, IEnumerable<HostSnapshot> hosts)
    {
        var candidates = hosts.Where(h => h.JoinsSpans && h.FreeSlots.Count > 0 && HoldsRank(job, h)).ToList();
        if (candidates.Sum(h => h.FreeSlots.Count) < job.WorldSize) return null;
        int sp = job.SequenceParallelSize;
        bool wholeGroups = candidates.Sum(h => h.FreeSlots.Count / sp) >= job.DataParallelSize;
        int Room(HostSnapshot h) => wholeGroups ? h.FreeSlots.Count / sp * sp : h.FreeSlots.Count;
        var parts = new List<HostPart>();
        int left = job.WorldSize;
        foreach (var h in candidates.Where(h => Room(h) > 0).OrderByDescending(Room).ThenBy(h => h.TotalSlots).ThenBy(h => h.HostId))
        {
            if (left == 0) break;
            int take = Math.Min(Room(h), left);
            parts.Add(new HostPart(h.HostId, h.FreeSlots.Order().Take(take).ToArray()));
            left -= take;
        }
        return new Binding(job.JobId, parts[0].HostId, parts[0].SlotIndexes) { More = parts[1..] };
    }

    /// <summary>Places what fits, highest priority first and oldest first within a priority. A job that
    /// does not fit now is passed over (smaller jobs behind it may still fit) and waits for the next pass.
    /// One host is always preferred; with <paramref name="spanHosts"/> a job no host can hold may span hosts.</summary>
    public static List<Binding> Plan(IEnumerable<PendingJob> queue, IEnumerable<HostSnapshot> hosts, bool spanHosts = false)
    {
        var free = hosts.ToDictionary(h => h.HostId);
        var plan = new List<Binding>();
        foreach (var job in queue.OrderByDescending(j => j.Priority).ThenBy(j => j.CreatedAt).ThenBy(j => j.JobId))
        {
            if (job.WorldSize < 1) continue;
            var host = Score(job, Filter(job, free.Values));
            var binding = host != null ? Bind(job, host) : spanHosts ? Span(job, free.Values) : null;
            if (binding == null) continue;
            plan.Add(binding);
            foreach (var part in binding.Parts)
                free[part.HostId] = free[part.HostId] with { FreeSlots = free[part.HostId].FreeSlots.Except(part.SlotIndexes).ToArray() };
        }
        return plan;
    }
}
