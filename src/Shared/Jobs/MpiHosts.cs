using System.Text.RegularExpressions;

namespace LongSeqService.Shared.Jobs;

/// <summary>One host of a world that spans hosts, and how many of the world's ranks it runs.</summary>
public sealed record MpiHost(string Name, int Slots);

/// <summary>
/// The <c>mpi_hosts</c> key: <c>hostA:2,hostB:2</c>, the hosts of one run's MPI world in rank order (Hydra's
/// <c>-hosts</c>). Ranks fill the hosts in order — ranks 0–1 on hostA, 2–3 on hostB — so each sequence-parallel
/// group (consecutive world ranks, <c>rank = dp_rank × sp + sp_rank</c>) sits on as few hosts as possible and
/// its ring crosses a host boundary only where a group is larger than a host's share. The first host is the
/// one that launches mpiexec and holds output_dir: rank 0 runs there and is the only rank that writes.
/// </summary>
public static partial class MpiHosts
{
    /// <summary>The hosts, or an error naming what is wrong and what would work (null when <paramref name="text"/> is valid).</summary>
    public static IReadOnlyList<MpiHost> Parse(string text, out string? error)
    {
        var hosts = new List<MpiHost>();
        error = null;
        foreach (var item in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var m = Item().Match(item);
            if (!m.Success || !int.TryParse(m.Groups[2].Value, out var slots) || slots is < 1 or > 1024)
            {
                error = $"'{WireNames.Shorten(item)}' is not HOST:SLOTS (a host name or address, a colon, 1–1024 ranks), e.g. hostA:2,hostB:2";
                return [];
            }
            if (hosts.Any(h => h.Name == m.Groups[1].Value))
            {
                error = $"host '{m.Groups[1].Value}' is listed twice; give each host once with all its ranks";
                return [];
            }
            hosts.Add(new MpiHost(m.Groups[1].Value, slots));
        }
        return hosts;
    }

    /// <summary>What mpiexec's <c>-hosts</c> option takes.</summary>
    public static string HydraList(IEnumerable<MpiHost> hosts) => string.Join(",", hosts.Select(h => $"{h.Name}:{h.Slots}"));

    /// <summary>The host that runs world rank <paramref name="rank"/> (ranks fill the hosts in order).</summary>
    public static MpiHost HostOf(IReadOnlyList<MpiHost> hosts, int rank)
    {
        foreach (var h in hosts)
        {
            if (rank < h.Slots) return h;
            rank -= h.Slots;
        }
        throw new ArgumentOutOfRangeException(nameof(rank), "beyond the hosts' slots");
    }

    [GeneratedRegex(@"^([A-Za-z0-9][A-Za-z0-9._-]{0,252}):(\d{1,4})$")]
    private static partial Regex Item();
}
