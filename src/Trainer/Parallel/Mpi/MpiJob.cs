using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// One <c>mpiexec -n N dotnet trainer.dll …</c> job started by this process, with a folder its ranks
/// report into (<c>rank-R.pid</c>, <see cref="RankFailureReport"/>): its end, and the failing rank's error
/// when it fails. The whole process tree (mpiexec, Hydra's proxy, the ranks) is killed when the job is
/// disposed, when this process exits, and on SIGINT/SIGTERM — no orphans; the ranks also watch this
/// process and end themselves if it disappears (<see cref="WatchLauncher"/>).
/// </summary>
public sealed partial class MpiJob : IDisposable
{
    private readonly Process _process;
    private readonly string _reportDir;
    private readonly List<string> _output = [];
    private readonly List<PosixSignalRegistration> _signals = [];
    private readonly Task[] _pumps;
    private readonly Dictionary<int, int> _announced = [];           // pid → rank, from AnnounceRankOnStdout
    private readonly IReadOnlyList<MpiHost>? _hosts;
    private readonly HydraProxies? _proxies;

    private MpiJob(Process process, string reportDir, IReadOnlyList<MpiHost>? hosts)
    {
        (_process, _reportDir, _hosts) = (process, reportDir, hosts);
        if (hosts is { Count: > 1 }) _proxies = new HydraProxies(process.Id, hosts);
        _pumps = [Task.Run(() => Pump(process.StandardOutput)), Task.Run(() => Pump(process.StandardError))];
        AppDomain.CurrentDomain.ProcessExit += KillOnExit;
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            _signals.Add(PosixSignalRegistration.Create(signal, _ => Kill()));   // the default handling (exit) follows
    }

    /// <summary>The error type of a world that lost a host (<see cref="Failure"/>): the attempt is lost, not the job — a
    /// host supervising the launch reports it interrupted, so it is requeued and resumes from its newest checkpoint.</summary>
    public const string HostLostType = "HostLost";

    /// <summary>Whether a trainer's error line (<see cref="RankFailedException"/>'s message) says its world lost a host.</summary>
    public static bool SaysHostLost(string? errorLine) => errorLine?.Contains($" failed: {HostLostType}: ", StringComparison.Ordinal) == true;

    /// <summary>The MPI host name such a line names as lost or unreachable (<see cref="Failure"/>'s words), or null when it names none.</summary>
    public static string? LostHostName(string? errorLine) =>
        SaysHostLost(errorLine) && LostHostLine().Match(errorLine!) is { Success: true } m ? m.Groups[1].Value : null;

    public const string InstallHint = "ranks as processes need MPICH (mpiexec and libmpich.so.12): apt-get install -y mpich";

    /// <summary>mpiexec on PATH, or null.</summary>
    public static string? FindMpiexec() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpiexec")).FirstOrDefault(File.Exists);

    /// <summary>Whether jobs can start here: mpiexec and MPICH's library are installed.</summary>
    public static bool IsAvailable => FindMpiexec() is not null && MpiRuntime.IsAvailable();

    /// <summary>
    /// Starts <paramref name="ranks"/> processes of this trainer running <paramref name="trainerArgs"/>: on this
    /// host, or on <paramref name="hosts"/> in order (<see cref="HostArguments"/>). The trainer (the dotnet host
    /// and trainer.dll) must be at the same paths on every host.
    /// </summary>
    public static MpiJob Start(int ranks, IEnumerable<string> trainerArgs, string reportDir, IReadOnlyDictionary<string, string>? environment = null,
        IReadOnlyList<MpiHost>? hosts = null)
    {
        var mpiexec = FindMpiexec() ?? throw new InvalidOperationException(InstallHint);
        var psi = new ProcessStartInfo(mpiexec)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        // -prepend-rank: output says which rank wrote it ("[1] …"), for people reading a failure.
        var hostArgs = hosts is null ? [] : HostArguments(hosts, psi.Environment);
        foreach (var a in hostArgs.Concat(["-n", ranks.ToString(), "-prepend-rank", DotnetHost(), TrainerAssembly()]).Concat(trainerArgs)) psi.ArgumentList.Add(a);
        // UCX (MPICH's transport) must leave SIGSEGV to .NET, which turns it into NullReferenceException.
        psi.Environment["UCX_HANDLE_ERRORS"] = "none";
        // glibc serves blocks under its (growing, up to 32 MB) mmap threshold from arenas that keep freed
        // pages; a rank's resident memory then overstates its live tensors (measured: 16k tokens, SP=1:
        // 1.3–1.4 GiB peak − baseline by default, 0.54 GiB with this; docs/benchmarks.md). A fixed 128 KiB
        // threshold returns every freed tensor to the system. A GLIBC_TUNABLES of the user's own wins.
        if (!psi.Environment.ContainsKey("GLIBC_TUNABLES")) psi.Environment["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=131072";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {mpiexec}");
        process.StandardInput.Close();
        return new MpiJob(process, reportDir, hosts);
    }

    /// <summary>The command that starts Hydra's proxy on another host (<c>-launcher-exec</c>; ssh when unset).</summary>
    public const string LauncherExecVariable = "LONGSEQ_MPI_LAUNCHER_EXEC";

    /// <summary>The network interface the hosts reach each other on (Hydra's <c>-iface</c>, UCX's <c>UCX_NET_DEVICES</c>).</summary>
    public const string InterfaceVariable = "LONGSEQ_MPI_IFACE";

    /// <summary>
    /// mpiexec's options for a world on several hosts: <c>-hosts A:2,B:2</c> (ranks fill each host in turn),
    /// the ssh launcher (or the command in <see cref="LauncherExecVariable"/>: Hydra runs it as
    /// <c>CMD -x HOST "hydra_pmi_proxy …"</c>), and with <see cref="InterfaceVariable"/> the interface for both
    /// Hydra's control connections (<c>-iface</c>: the proxies connect back to mpiexec at that interface's
    /// address, not at this host's name, which other hosts may not resolve) and UCX's data path
    /// (<c>UCX_NET_DEVICES</c>, unless set). Hydra passes mpiexec's environment on to every rank. The ranks
    /// start in the trainer's folder (<c>-wdir</c>), not in this process's working folder, which other hosts may lack.
    /// </summary>
    public static List<string> HostArguments(IReadOnlyList<MpiHost> hosts, IDictionary<string, string?> environment)
    {
        // -wdir: Hydra would enter mpiexec's working folder on every host; the trainer's folder exists on all of them.
        var args = new List<string> { "-hosts", MpiHosts.HydraList(hosts), "-launcher", "ssh", "-wdir", Path.GetDirectoryName(TrainerAssembly())! };
        if (Environment.GetEnvironmentVariable(LauncherExecVariable) is { Length: > 0 } exec) args.AddRange(["-launcher-exec", exec]);
        if (Environment.GetEnvironmentVariable(InterfaceVariable) is { Length: > 0 } iface)
        {
            args.AddRange(["-iface", iface]);
            if (!environment.ContainsKey("UCX_NET_DEVICES")) environment["UCX_NET_DEVICES"] = iface;
        }
        return args;
    }

    /// <summary>Waits up to <paramref name="milliseconds"/>; true once the job has ended.</summary>
    public bool WaitForExit(int milliseconds)
    {
        _proxies?.Look();
        CheckWorldFormed();
        if (!_process.WaitForExit(milliseconds)) return false;
        Task.WaitAll(_pumps);
        return true;
    }

    private MpiHost? _unreachable;
    private long? _proxyEndedAt;

    /// <summary>
    /// A host whose launcher (ssh) or proxy ended before any rank of the world announced itself could not be reached:
    /// mpiexec does not notice — it leaves the launcher a zombie and the other hosts' ranks wait in MPI_Init forever
    /// (measured: a launch with one unreachable host never ended). After a second's grace (an announcement may still be
    /// on its way through Hydra) the job is ended here and <see cref="Failure"/> names the host.
    /// </summary>
    private void CheckWorldFormed()
    {
        if (_unreachable != null || _proxies is not { } proxies) return;
        var lost = proxies.Lost ?? (proxies.UnnamedEnded ? proxies.NeverSeen.FirstOrDefault() : null);
        if (lost is null) return;
        bool formed;
        lock (_output) formed = _announced.Count > 0;
        if (formed || AnnouncedRanks().Any()) return;
        _proxyEndedAt ??= Environment.TickCount64;
        if (Environment.TickCount64 - _proxyEndedAt < UnreachableGraceMilliseconds) return;
        _unreachable = lost;
        Kill();
    }

    private const int UnreachableGraceMilliseconds = 1000;

    public int ExitCode => _process.ExitCode;

    /// <summary>The last lines mpiexec and the ranks wrote (stdout and stderr).</summary>
    public IReadOnlyList<string> OutputTail
    {
        get { lock (_output) return _output.ToList(); }
    }

    /// <summary>Why the job failed: the rank's own report when it wrote one, else which rank's process died and how.</summary>
    public Exception Failure()
    {
        if (RankFailureReport.ReadFirst(_reportDir) is { } r) return new RankFailedException(r.Rank, new RankProcessException(r.Type, r.Message));
        var output = OutputTail;
        if (_unreachable is { } gone && _hosts is { } world)
        {
            int first = world.TakeWhile(h => h != gone).Sum(h => h.Slots);
            var said = output.Where(l => l.Contains(gone.Name, StringComparison.Ordinal) && !l.StartsWith("[mpiexec@", StringComparison.Ordinal)).LastOrDefault();
            return new RankFailedException(first, new RankProcessException(HostLostType,
                $"host {gone.Name} (ranks {first}–{first + gone.Slots - 1}) could not be reached: its launcher ended before the world formed" +
                (said is null ? "" : $" ({said.Trim()})") + $"; the world was {MpiHosts.HydraList(world)}"));
        }
        if (_hosts is { Count: > 1 } hosts && HydraProxies.ConnectionClosed(output))
        {
            var lost = _proxies?.Lost;
            int first = lost is null ? 0 : hosts.TakeWhile(h => h != lost).Sum(h => h.Slots);
            return new RankFailedException(first, new RankProcessException(HostLostType, lost is null
                ? $"a host was lost (the connection of its Hydra proxy to mpiexec closed); the world ran on {MpiHosts.HydraList(hosts)}"
                : $"host {lost.Name} (ranks {first}–{first + lost.Slots - 1}) was lost: its Hydra proxy ended while the world ran, and mpiexec ended every rank"));
        }
        // A rank on another host has no report folder: its report is its stderr line, forwarded by Hydra.
        if (output.Select(l => ReportLine().Match(l)).FirstOrDefault(m => m.Success) is { } reported)
            return new RankFailedException(int.Parse(reported.Groups[1].Value), new RankProcessException(reported.Groups[2].Value, reported.Groups[3].Value.Trim()));
        var all = string.Join("\n", output);
        var pid = BadTerminationPid().Match(all);
        var code = ExitCodeLine().Match(all);
        // A rank that crashed in the runtime says so on its stderr (FailFast: "Process terminated.", an
        // unhandled exception): the first such rank is the cause. Else Hydra's first "BAD TERMINATION"
        // block, which names the first process it saw die (a SIGKILL leaves no words).
        var crash = output.Select(l => RuntimeCrash().Match(l)).FirstOrDefault(m => m.Success);
        int? rank = crash is not null ? int.Parse(crash.Groups[1].Value) : pid.Success ? RankOfPid(int.Parse(pid.Groups[1].Value)) : null;
        if (rank is { } failed)
        {
            var prefix = $"[{failed}] ";
            var own = output.Where(l => l.StartsWith(prefix, StringComparison.Ordinal))
                .Select(l => TrailingPrefix().Replace(l[prefix.Length..], "").Trim()).Where(l => l.Length > 0 && !l.StartsWith("at ", StringComparison.Ordinal) && !Announcement().IsMatch(l)).TakeLast(2).ToList();
            var how = crash is null && code.Success ? $"exit status {code.Groups[1].Value}{SignalName(int.Parse(code.Groups[1].Value))}" : "a crash";
            var where = _hosts is { Count: > 1 } ? $" on host {MpiHosts.HostOf(_hosts, failed).Name}" : "";
            return new RankFailedException(failed, new RankProcessException("ProcessExited",
                $"its process{where} ended with {how}" + (own.Count > 0 ? ": " + string.Join(" | ", own) : "")));
        }
        return new InvalidOperationException($"mpiexec exited with code {_process.ExitCode}: " +
            string.Join(" | ", output.Where(l => l.Trim('=', ' ').Length > 0).TakeLast(5)));
    }

    public void Dispose()
    {
        Kill();
        AppDomain.CurrentDomain.ProcessExit -= KillOnExit;
        foreach (var s in _signals) s.Dispose();
        _process.Dispose();
    }

    /// <summary>Run in each rank: leave <c>rank-R.pid</c> in the report folder, so a rank that dies without a word can be named.</summary>
    public static void AnnounceRank(string reportDir)
    {
        var rank = Environment.GetEnvironmentVariable("PMI_RANK") ?? "0";
        File.WriteAllText(Path.Combine(reportDir, $"rank-{rank}.pid"), Environment.ProcessId.ToString());
    }

    /// <summary>
    /// Run in each rank of a world on several hosts, where the launcher cannot read <c>rank-R.pid</c>: the same
    /// fact as a line of output, which Hydra forwards (<see cref="Failure"/> names a rank that died without a word from it).
    /// </summary>
    public static void AnnounceRankOnStdout(int rank) => Console.Out.WriteLine($"longseq-rank {rank} pid {Environment.ProcessId}");

    /// <summary>This machine's boot id: a launcher's pid names a process only on the machine with the launcher's boot id.</summary>
    public static string? BootId()
    {
        try { return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Run in each rank: end this process if the launcher (<paramref name="launcherPid"/>) is gone — killed
    /// with SIGKILL it could not kill us itself.
    /// </summary>
    public static void WatchLauncher(int launcherPid)
    {
        new Thread(() =>
        {
            while (Directory.Exists($"/proc/{launcherPid}")) Thread.Sleep(1000);
            Environment.FailFast($"rank process {Environment.ProcessId}: the launcher (pid {launcherPid}) is gone");
        }) { IsBackground = true, Name = "launcher-watch" }.Start();
    }

    /// <summary>The ranks on this host that have announced themselves (<c>rank-R.pid</c>), with their process ids.</summary>
    public IEnumerable<(int Rank, int Pid)> AnnouncedRanks()
    {
        foreach (var f in Directory.EnumerateFiles(_reportDir, "rank-*.pid"))
            if (int.TryParse(Path.GetFileNameWithoutExtension(f)["rank-".Length..], out var rank) && int.TryParse(File.ReadAllText(f).Trim(), out var pid))
                yield return (rank, pid);
    }

    private int? RankOfPid(int pid)
    {
        lock (_output)
            if (_announced.TryGetValue(pid, out var announced)) return announced;
        return AnnouncedRanks().Where(r => r.Pid == pid).Select(r => (int?)r.Rank).FirstOrDefault();
    }

    private static string SignalName(int status) => status switch
    {
        6 => " (SIGABRT)", 9 => " (SIGKILL: killed, perhaps for memory)", 11 => " (SIGSEGV)", 15 => " (SIGTERM)", _ => "",
    };

    /// <summary>
    /// SIGKILL to mpiexec and every descendant, found before any is killed (Hydra starts each rank in a
    /// session of its own, and a killed parent's children are re-parented at once, so killing "the
    /// group" or walking the tree while killing misses some).
    /// </summary>
    private void Kill()
    {
        int root;
        try { if (_process.HasExited) return; root = _process.Id; }
        catch (InvalidOperationException) { return; }          // not started or already reaped
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); } catch (IOException) { continue; } catch (UnauthorizedAccessException) { continue; }
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (int.TryParse(fields[1], out var ppid)) (children.TryGetValue(ppid, out var l) ? l : children[ppid] = []).Add(pid);
        }
        var tree = new List<int> { root };
        for (int i = 0; i < tree.Count; i++) if (children.TryGetValue(tree[i], out var c)) tree.AddRange(c);
        foreach (var pid in tree) SendSignal(pid, 9);
        try { _process.WaitForExit(1000); } catch (InvalidOperationException) { }   // reap mpiexec
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);

    private void KillOnExit(object? sender, EventArgs e) => Kill();

    private void Pump(StreamReader reader)
    {
        while (reader.ReadLine() is { } line)
            lock (_output)
            {
                if (Announcement().Match(line) is { Success: true } a) _announced[int.Parse(a.Groups[2].Value)] = int.Parse(a.Groups[1].Value);
                _output.Add(line);
                if (_output.Count > 400) _output.RemoveRange(0, 200);
            }
    }

    private static string TrainerAssembly() => typeof(MpiJob).Assembly.Location;

    /// <summary>The dotnet host: this process's own when it is one (the CLI, the test host), else DOTNET_HOST_PATH or PATH's.</summary>
    private static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        if (self != null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }

    [GeneratedRegex(@"PID (\d+) RUNNING AT")]
    private static partial Regex BadTerminationPid();

    [GeneratedRegex(@"^\[(\d+)\] (Process terminated\.|Unhandled exception\.|Fatal error\.)")]
    private static partial Regex RuntimeCrash();

    /// <summary>Hydra prefixes each chunk it forwards, so a "[r] " can land at the end of a line.</summary>
    [GeneratedRegex(@"\[\d+\]\s*$")]
    private static partial Regex TrailingPrefix();

    [GeneratedRegex(@"longseq-rank (\d+) pid (\d+)")]
    private static partial Regex Announcement();

    /// <summary><see cref="RankFailureReport"/>'s stderr line: "rank R failed: Type: message".</summary>
    [GeneratedRegex(@"rank (\d+) failed: (\w+): (.*)$")]
    private static partial Regex ReportLine();

    [GeneratedRegex(@"EXIT CODE: (\d+)")]
    private static partial Regex ExitCodeLine();

    [GeneratedRegex(@" failed: HostLost: host (\S+) \(ranks \d+–\d+\) (?:was lost|could not be reached)")]
    private static partial Regex LostHostLine();
}
