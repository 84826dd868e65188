using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// One trainer child process, with no orphans left behind:
/// <list type="bullet">
/// <item>it runs in its own process group (setsid), so a cancel signals the whole tree — the trainer and
/// anything it started (e.g. mpiexec ranks);</item>
/// <item>the group's leader is a tiny sh supervisor with a parent-death signal (setpriv --pdeathsig TERM):
/// if the host dies, even by SIGKILL, the kernel sends it SIGTERM and it SIGKILLs its whole group.
/// Linux sends that signal when the *thread* that forked the child exits, so every child is started from
/// one launcher thread that lives as long as the host process. The trainer itself has a parent-death
/// signal too (KILL, when the supervisor dies), and the host kills the whole group after every exit, so
/// MPI rank processes left behind by a dead mpiexec go with it;</item>
/// <item>a lease: the supervisor kills its group when the host's lease file (touched every second by a
/// live host process) is older than the lease, so a frozen (SIGSTOPped) host's trainer stops writing before
/// the API gives up on the host and places its run elsewhere. It leaves a marker file saying so;</item>
/// <item>the child's environment is an allow-list (<see cref="ChildEnvironment"/>): the host key, admin key
/// and database password the host may have in its environment never reach a trainer.</item>
/// </list>
/// </summary>
public sealed class TrainerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly object _gate = new();
    private string? _lastError;
    public int Pid { get; }
    /// <summary>The trainer's own last error line on stderr ("error: …", an unhandled exception), never a
    /// progress line: its one-line error on failure. Null when it wrote none (e.g. it was killed).</summary>
    public string? LastErrorLine { get { lock (_gate) return _lastError; } }

    private readonly Task _exited;

    private TrainerProcess(Process process, StreamWriter log, Task exited)
    {
        _process = process;
        _log = log;
        _exited = exited;
        Pid = process.Id;
    }

    /// <summary>The lease the supervisor watches: <paramref name="File"/> must be touched at least every
    /// <paramref name="Seconds"/> s; when it is not, the supervisor writes <paramref name="ExpiredMarker"/> and kills its group.</summary>
    public sealed record Lease(string File, int Seconds, string ExpiredMarker);

    public static Task<TrainerProcess> StartAsync(IReadOnlyList<string> command, IEnumerable<string> args, string workDir, string logPath,
        IReadOnlyDictionary<string, string>? environment = null, Lease? lease = null)
    {
        var psi = new ProcessStartInfo { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var argv = Wrapped(command.Concat(args).ToList(), lease);
        psi.FileName = argv[0];
        foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment.Clear();
        foreach (var (k, v) in ChildEnvironment.From(Environment.GetEnvironmentVariables())) psi.Environment[k] = v;
        if (environment != null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        return Launcher.Run(() =>
        {
            var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
            // Exited, not WaitForExit: the latter also waits for the output pipes to close, which a
            // grandchild still holding them (a supervisor killed under its trainer) would never do.
            var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            p.Exited += (_, _) => exited.TrySetResult();
            var tp = new TrainerProcess(Start(p, log), log, exited.Task);
            if (p.HasExited) exited.TrySetResult();
            p.OutputDataReceived += (_, e) => { if (e.Data != null) tp.Write(e.Data, error: false); };
            p.ErrorDataReceived += (_, e) => { if (e.Data != null) tp.Write(e.Data, error: true); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            return tp;
        });
    }

    private static Process Start(Process p, StreamWriter log)
    {
        try { p.Start(); return p; }
        catch { log.Dispose(); throw; }
    }

    private void Write(string line, bool error)
    {
        lock (_gate)
        {
            _log.WriteLine(line);
            if (error && IsErrorLine(line)) _lastError = line.Trim();
        }
    }

    private static bool IsErrorLine(string line)
    {
        var t = line.TrimStart();
        return t.StartsWith("error", StringComparison.OrdinalIgnoreCase) || t.StartsWith("fatal", StringComparison.OrdinalIgnoreCase)
            || t.StartsWith("Unhandled exception", StringComparison.OrdinalIgnoreCase) || System.Text.RegularExpressions.Regex.IsMatch(t, @"^[\w.]+Exception: ");
    }

    /// <summary>The exit code, once the process and its output streams are done; whatever is left of its
    /// process group (ranks of a dead mpiexec, a trainer whose supervisor was killed) is killed then.</summary>
    public async Task<int> WaitAsync(CancellationToken ct)
    {
        await _exited.WaitAsync(ct);
        if (Launcher.Isolates) _ = kill(-Pid, Sigkill);
        using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(5)); // the last output lines
        try { await _process.WaitForExitAsync(drain.Token); } catch (OperationCanceledException) { }
        return _process.ExitCode;
    }

    public bool HasExited => _process.HasExited;

    /// <summary>SIGTERM to the whole process group (the supervisor then SIGKILLs it), SIGKILL again after
    /// <paramref name="grace"/> in case the supervisor is gone.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited) return;
        SignalGroup(Sigterm);
        using var wait = new CancellationTokenSource(grace);
        try { await _process.WaitForExitAsync(wait.Token); }
        catch (OperationCanceledException) { }
        SignalGroup(Sigkill); // also reaches grandchildren that outlived the leader
        if (!_process.HasExited) try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        await _process.WaitForExitAsync();
    }

    private void SignalGroup(int signal)
    {
        // With setsid the trainer leads its own group (pgid = pid); without it, signal the process only.
        if (Launcher.Isolates) _ = kill(-Pid, signal);
        else if (!_process.HasExited) _ = kill(Pid, signal);
    }

    public void Dispose()
    {
        _process.Dispose();
        lock (_gate) _log.Dispose();
    }

    /// <summary>The supervisor ($1 lease file, $2 lease seconds, $3 expiry marker, then the command): on
    /// SIGTERM/INT/HUP (a cancel, or the host's death) it kills its whole group; a watchdog kills the group
    /// when the lease file goes stale; otherwise it waits for the trainer and exits with its code.</summary>
    private const string Supervisor = """
        lease=$1; secs=$2; marker=$3; shift 3
        trap 'kill -KILL 0' TERM INT HUP
        /usr/bin/setpriv --pdeathsig KILL -- "$@" & child=$!
        if [ "$secs" -gt 0 ]; then
          ( while sleep 1; do
              age=$(( $(date +%s) - $(stat -c %Y "$lease" 2>/dev/null || echo 0) ))
              if [ "$age" -gt "$secs" ]; then echo "lease expired: the host was silent for ${age}s" > "$marker"; kill -KILL 0; fi
            done ) & watchdog=$!
        fi
        wait $child; code=$?
        [ -n "${watchdog:-}" ] && kill $watchdog 2>/dev/null
        exit $code
        """;

    /// <summary>[setsid, setpriv --pdeathsig TERM --, sh -c SUPERVISOR, lease…, command…] where those tools exist (util-linux).</summary>
    private static List<string> Wrapped(List<string> argv, Lease? lease) =>
        Launcher.Isolates
            ? ["/usr/bin/setsid", "/usr/bin/setpriv", "--pdeathsig", "TERM", "--", "/bin/sh", "-c", Supervisor, "sh",
               lease?.File ?? "/dev/null", (lease?.Seconds ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture), lease?.ExpiredMarker ?? "/dev/null", .. argv]
            : argv;

    private const int Sigterm = 15, Sigkill = 9;
    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);

    /// <summary>The one long-lived thread that forks every trainer (see the class comment).</summary>
    private static class Launcher
    {
        public static readonly bool Isolates = OperatingSystem.IsLinux() && File.Exists("/usr/bin/setsid") && File.Exists("/usr/bin/setpriv") && File.Exists("/bin/sh");
        private static readonly BlockingCollection<Action> Work = [];
        private static readonly Thread Thread = StartThread();

        private static Thread StartThread()
        {
            var t = new Thread(() => { foreach (var work in Work.GetConsumingEnumerable()) work(); }) { IsBackground = true, Name = "trainer-launcher" };
            t.Start();
            return t;
        }

        public static Task<T> Run<T>(Func<T> start)
        {
            _ = Thread;
            var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            Work.Add(() => { try { done.SetResult(start()); } catch (Exception e) { done.SetException(e); } });
            return done.Task;
        }
    }
}
