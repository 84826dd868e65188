using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Hosts;

/// <summary>
/// The <c>mpi_hosts</c> of a run whose world spans hosts, derived from its binding (never from the tenant, who cannot
/// set it): the launching host first, then each further host of the span, each with as many ranks as the attempt holds
/// slots there, under the name the host registered for the MPI launcher. Ranks fill the hosts in that order (rank 0 on
/// the launching host), as placement planned.
/// </summary>
public static class RunWorld
{
    /// <summary>The spec a host runs: with the span's <c>mpi_hosts</c> and ranks as processes, or without <c>mpi_hosts</c> on one host.
    /// Null when the binding no longer adds up to the world (a host of the span re-registered with other slots): not startable.</summary>
    public static async Task<JobSpec?> ApplyAsync(ServiceDb db, Job job, JobSpec spec, CancellationToken ct)
    {
        if (job.SpanHostIds.Length == 0) return spec with { MpiHosts = null };
        int[] order = [job.HostId!.Value, .. job.SpanHostIds];
        var held = await db.HostSlots.AsNoTracking().Where(s => s.JobId == job.Id).GroupBy(s => s.HostId)
            .Select(g => new { Host = g.Key, Slots = g.Count() }).ToDictionaryAsync(x => x.Host, x => x.Slots, ct);
        var names = await db.Hosts.AsNoTracking().Where(h => order.Contains(h.Id)).ToDictionaryAsync(h => h.Id, h => h.MpiHost, ct);
        if (order.Any(h => !held.ContainsKey(h) || names.GetValueOrDefault(h) is null) || held.Values.Sum() != job.WorldSize || held.Count != order.Length)
            return null;
        var hosts = order.Select(h => new MpiHost(names[h]!, held[h])).ToList();
        return spec with { MpiHosts = MpiHosts.HydraList(hosts), Launch = Launch.Processes };
    }
}
