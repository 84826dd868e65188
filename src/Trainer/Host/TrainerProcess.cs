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
/// one launcher thread that lives as long as the host process.</item>
/// </list>
/// </summary>
public sealed class TrainerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly object _gate = new();
    private string? _lastError;
    public int Pid { get; }
    /// <summary>The last non-empty line the trainer wrote to stderr: its one-line error on failure.</summary>
    public string? LastErrorLine { get { lock (_gate) return _lastError; } }

    private TrainerProcess(Process process, StreamWriter log)
    {
        _process = process;
        _log = log;
        Pid = process.Id;
    }

    public static Task<TrainerProcess> StartAsync(IReadOnlyList<string> command, IEnumerable<string> args, string workDir, string logPath,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var argv = Wrapped(command.Concat(args).ToList());
        psi.FileName = argv[0];
        foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        if (environment != null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        return Launcher.Run(() =>
        {
            var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
            var tp = new TrainerProcess(Start(p, log), log);
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
            if (error && !string.IsNullOrWhiteSpace(line)) _lastError = line.Trim();
        }
    }

    /// <summary>The exit code, once the process and its output streams are done.</summary>
    public async Task<int> WaitAsync(CancellationToken ct)
    {
        await _process.WaitForExitAsync(ct);
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

    /// <summary>The supervisor: on SIGTERM/INT/HUP (a cancel, or the host's death) it kills its whole group;
    /// otherwise it waits for the trainer and exits with its code.</summary>
    private const string Supervisor = "trap 'kill -KILL 0' TERM INT HUP; \"$@\" & wait $!";

    /// <summary>[setsid, setpriv --pdeathsig TERM --, sh -c SUPERVISOR, command…] where those tools exist (util-linux).</summary>
    private static List<string> Wrapped(List<string> argv) =>
        Launcher.Isolates ? ["/usr/bin/setsid", "/usr/bin/setpriv", "--pdeathsig", "TERM", "--", "/bin/sh", "-c", Supervisor, "sh", .. argv] : argv;

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
