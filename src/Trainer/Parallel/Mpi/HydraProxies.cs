using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// Which host of a world on several hosts was lost. mpiexec starts one child per host — the launcher (ssh, or
/// <c>-launcher-exec</c>) that runs Hydra's proxy there, with <c>--proxy-id N</c> (N: the host's place in
/// <c>-hosts</c>) on its command line — and when a host dies, its child ends (the connection closed) and
/// mpiexec ends the whole job, saying only that a proxy's connection closed. Each child found is watched
/// through a pidfd (<c>pidfd_open</c>), which becomes readable the moment that process ends, reaped or not:
/// the first to end is the lost host. Polling <c>/proc</c> instead missed it whenever mpiexec ended the job
/// between two looks (it does within milliseconds on an idle machine).
/// </summary>
internal sealed partial class HydraProxies(int mpiexecPid, IReadOnlyList<MpiHost> hosts)
{
    private readonly HashSet<int> _watched = [];
    private readonly HashSet<int> _watchedHosts = [];
    private long _nextLook;
    private MpiHost? _lost;

    /// <summary>The host whose proxy ended first, once one has.</summary>
    public MpiHost? Lost => Volatile.Read(ref _lost);

    /// <summary>A child of mpiexec ended before it could be told apart: a launcher that failed at once (ssh could not
    /// connect) is a zombie without a command line by the first look.</summary>
    public bool UnnamedEnded { get; private set; }

    /// <summary>The hosts whose proxy was never seen running.</summary>
    public IEnumerable<MpiHost> NeverSeen => hosts.Where((_, i) => !_watchedHosts.Contains(i));

    /// <summary>Called while the job runs, until every host's proxy is watched; looks at most every 100 ms.</summary>
    public void Look()
    {
        if (_watched.Count >= hosts.Count || Environment.TickCount64 < _nextLook) return;
        _nextLook = Environment.TickCount64 + 100;
        foreach (var pid in Read($"/proc/{mpiexecPid}/task/{mpiexecPid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse))
        {
            if (_watched.Contains(pid)) continue;
            if (ProxyId().Match(Read($"/proc/{pid}/cmdline").Replace('\0', ' ')) is not { Success: true } m)
            {
                if (Ended(Read($"/proc/{pid}/stat"))) UnnamedEnded = true;
                continue;
            }
            var fd = PidfdOpen(pid);
            if (fd < 0 && Marshal.GetLastPInvokeError() == EsrchErrno) continue;   // already gone and reaped: not the one that ended first
            _watched.Add(pid);
            int id = int.Parse(m.Groups[1].Value);
            _watchedHosts.Add(id);
            var host = hosts[id];
            // Without pidfd_open (a kernel before 5.3, or a seccomp profile that refuses it), a 5 ms look at /proc.
            ThreadStart wait = fd >= 0 ? () => WaitForEnd(fd, host) : () => PollForEnd(pid, host);
            new Thread(wait) { IsBackground = true, Name = $"hydra-proxy-{host.Name}" }.Start();
        }
    }

    private void WaitForEnd(int fd, MpiHost host)
    {
        var poll = new PollFd { Fd = fd, Events = PollIn };
        while (Poll(ref poll, 1, -1) < 0 && Marshal.GetLastPInvokeError() == EintrErrno) { }
        Interlocked.CompareExchange(ref _lost, host, null);
        Close(fd);
    }

    private void PollForEnd(int pid, MpiHost host)
    {
        string stat;
        while ((stat = Read($"/proc/{pid}/stat")).Length > 0 && !Ended(stat)) Thread.Sleep(5);
        Interlocked.CompareExchange(ref _lost, host, null);
    }

    /// <summary>
    /// mpiexec's words when a proxy's connection closed under it: a host lost, not a rank that failed (then
    /// Hydra prints "BAD TERMINATION … PID p RUNNING AT host", and the proxies' own "assert (!closed)" lines
    /// are only the clean-up that follows).
    /// </summary>
    public static bool ConnectionClosed(IReadOnlyList<string> output) =>
        !output.Any(l => l.Contains("BAD TERMINATION", StringComparison.Ordinal))
        && output.Any(l => l.Contains("[mpiexec@", StringComparison.Ordinal) && l.Contains("assert (!closed) failed", StringComparison.Ordinal));

    /// <summary>"pid (comm) state …": a zombie mpiexec has not reaped.</summary>
    private static bool Ended(string stat) => stat.Length > 0 && stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');

    private static string Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    private const long SysPidfdOpen = 434;                                // the same number on x86-64 and arm64
    private const short PollIn = 0x1;
    private const int EintrErrno = 4;
    private const int EsrchErrno = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    private static int PidfdOpen(int pid) => (int)Syscall(SysPidfdOpen, pid, 0);

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)] private static extern long Syscall(long number, int pid, uint flags);
    [DllImport("libc", EntryPoint = "poll", SetLastError = true)] private static extern int Poll(ref PollFd fds, ulong count, int timeout);
    [DllImport("libc", EntryPoint = "close")] private static extern int Close(int fd);

    [GeneratedRegex(@"--proxy-id (\d+)")]
    private static partial Regex ProxyId();
}
