using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// Which host of a world on several hosts was lost. mpiexec starts one child per host — the launcher (ssh, or
/// <c>-launcher-exec</c>) that runs Hydra's proxy there, with <c>--proxy-id N</c> (N: the host's place in
/// <c>-hosts</c>) on its command line — and when a host dies, its child ends (the connection closed) and
/// mpiexec ends the whole job, saying only that a proxy's connection closed. Watching those children
/// while the job runs tells which one ended first.
/// </summary>
internal sealed partial class HydraProxies(int mpiexecPid, IReadOnlyList<MpiHost> hosts)
{
    private readonly Dictionary<int, int> _hostOfPid = [];
    private long _nextLook;

    /// <summary>The host whose proxy ended first, once one has.</summary>
    public MpiHost? Lost { get; private set; }

    /// <summary>Called while the job runs; looks at most every 100 ms.</summary>
    public void Look()
    {
        if (Lost != null || Environment.TickCount64 < _nextLook) return;
        _nextLook = Environment.TickCount64 + 100;
        if (_hostOfPid.Count < hosts.Count)
            foreach (var pid in Read($"/proc/{mpiexecPid}/task/{mpiexecPid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse))
                if (!_hostOfPid.ContainsKey(pid) && ProxyId().Match(Read($"/proc/{pid}/cmdline").Replace('\0', ' ')) is { Success: true } m)
                    _hostOfPid[pid] = int.Parse(m.Groups[1].Value);
        foreach (var (pid, host) in _hostOfPid)
        {
            var stat = Read($"/proc/{pid}/stat");
            // "pid (comm) state …": gone, or a zombie mpiexec has not reaped yet.
            if (stat.Length == 0 || stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z'))
            {
                Lost = hosts[host];
                return;
            }
        }
    }

    /// <summary>
    /// mpiexec's words when a proxy's connection closed under it: a host lost, not a rank that failed (then
    /// Hydra prints "BAD TERMINATION … PID p RUNNING AT host", and the proxies' own "assert (!closed)" lines
    /// are only the clean-up that follows).
    /// </summary>
    public static bool ConnectionClosed(IReadOnlyList<string> output) =>
        !output.Any(l => l.Contains("BAD TERMINATION", StringComparison.Ordinal))
        && output.Any(l => l.Contains("[mpiexec@", StringComparison.Ordinal) && l.Contains("assert (!closed) failed", StringComparison.Ordinal));

    private static string Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    [GeneratedRegex(@"--proxy-id (\d+)")]
    private static partial Regex ProxyId();
}
