using System.Diagnostics;
using LongSeqService.Trainer.Parallel.Mpi;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>
/// Separate "hosts" on this machine: one network namespace each (<c>lsq-span-TAG-i</c>), joined by a bridge in
/// the root namespace (addresses 10.78.X.i/24, the bridge .254), each with its own folder that no other host can
/// see (the launcher script mounts an empty tmpfs over the other hosts' folders), and the launcher Hydra runs
/// in place of ssh: <c>ip netns exec HOST</c>. Needs root and iproute2; <see cref="Unavailable"/> says why not.
/// Everything is removed on dispose (and when the test process exits), also after a failure.
/// </summary>
public sealed class NamespaceHosts : IDisposable
{
    /// <summary>The interface each host reaches the others on (the same name in every namespace).</summary>
    public const string Interface = "lsqeth0";

    private readonly string _tag = Guid.NewGuid().ToString("N")[..6];
    private readonly int _subnet = Random.Shared.Next(1, 254);
    private readonly string _root;
    private bool _disposed;

    public NamespaceHosts(int count)
    {
        _root = Directory.CreateTempSubdirectory($"lsq-span-{_tag}-").FullName;
        AppDomain.CurrentDomain.ProcessExit += OnExit;
        try
        {
            Ip($"link add {Bridge} type bridge");
            Ip($"addr add {BridgeAddress}/24 dev {Bridge}");
            Ip($"link set {Bridge} up");
            for (int i = 0; i < count; i++)
            {
                Directory.CreateDirectory(Dir(i));
                Ip($"netns add {Name(i)}");
                Ip($"link add lsqv{_tag}{i} type veth peer name {Interface} netns {Name(i)}");
                Ip($"link set lsqv{_tag}{i} master {Bridge}");
                Ip($"link set lsqv{_tag}{i} up");
                Ip($"-n {Name(i)} addr add {Address(i)}/24 dev {Interface}");
                Ip($"-n {Name(i)} link set {Interface} up");
                Ip($"-n {Name(i)} link set lo up");
            }
            Count = count;
            File.WriteAllText(Launcher, LauncherScript());
            Run("chmod", $"700 {Launcher}");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Why namespace hosts cannot be made here (null when they can).</summary>
    public static string? Unavailable => Probe.Value;

    private static readonly Lazy<string?> Probe = new(() =>
    {
        if (!MpiJob.IsAvailable) return MpiJob.InstallHint;
        if (Environment.UserName != "root") return $"network namespaces need root (running as {Environment.UserName})";
        if (!new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.Any(File.Exists)) return "iproute2's ip is not installed (apt-get install -y iproute2)";
        var probe = $"lsq-span-probe-{Environment.ProcessId}";
        var (code, _, error) = Run("ip", $"netns add {probe}");
        Run("ip", $"netns del {probe}");
        return code == 0 ? null : $"ip netns add failed here: {error.Trim()}";
    });

    public int Count { get; }

    public string Name(int host) => $"lsq-span-{_tag}-{host}";

    public string Address(int host) => $"10.78.{_subnet}.{host + 1}";

    /// <summary>The root namespace's address on the bridge: every host reaches a server listening there (the API).</summary>
    public string BridgeAddress => $"10.78.{_subnet}.254";

    /// <summary>The host's own folder (its working folder; invisible from the other hosts).</summary>
    public string Dir(int host) => Path.Combine(_root, $"host{host}");

    /// <summary>The mpi_hosts value: every host with <paramref name="slots"/> ranks, in order.</summary>
    public string MpiHosts(int slots) => string.Join(",", Enumerable.Range(0, Count).Select(i => $"{Name(i)}:{slots}"));

    /// <summary>
    /// What a launch across these hosts needs: this launcher, the interface, and UCX's tcp transport — on one
    /// machine UCX would otherwise reach the other namespaces through shared memory, not over the veth.
    /// TMPDIR in the launching host's folder, so the run's request folder is invisible to the others.
    /// </summary>
    public Dictionary<string, string> LaunchEnvironment(int launchingHost) => new()
    {
        [MpiJob.LauncherExecVariable] = Launcher, [MpiJob.InterfaceVariable] = Interface, ["UCX_TLS"] = "self,tcp", ["TMPDIR"] = Dir(launchingHost),
    };

    /// <summary>Starts <paramref name="file"/> inside host <paramref name="host"/>'s namespace, in its folder.</summary>
    public Process Start(int host, IReadOnlyDictionary<string, string> environment, string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("ip") { WorkingDirectory = Dir(host), RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", Name(host), file }.Concat(args)) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>Runs a shell command on host <paramref name="host"/> exactly as Hydra's proxy is started there; its exit code.</summary>
    public int RunAsProxy(int host, string command) => Run(Launcher, $"-x {Name(host)} \"{command}\"").Code;

    /// <summary>Bytes received on the host's interface so far.</summary>
    public long ReceivedBytes(int host) => long.Parse(Run("ip", $"netns exec {Name(host)} cat /sys/class/net/{Interface}/statistics/rx_bytes").Output.Trim());

    /// <summary>SIGKILL to every process in the host's namespace (Hydra's proxy and its ranks): the host is lost.</summary>
    public int KillAll(int host)
    {
        var pids = Run("ip", $"netns pids {Name(host)}").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // One kill(1) for all, as a host that dies takes them at once: one by one, the proxy could see its
        // ranks die first and report a failed rank instead of a lost host.
        if (pids.Length > 0) Run("kill", "-9 " + string.Join(' ', pids));
        return pids.Length;
    }

    /// <summary>Processes still running in the host's namespace.</summary>
    public int ProcessCount(int host) => Run("ip", $"netns pids {Name(host)}").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= OnExit;
        for (int i = 0; i < 16; i++)
        {
            if (Run("ip", $"netns list").Output.Contains(Name(i), StringComparison.Ordinal))
            {
                KillAll(i);
                Run("ip", $"netns del {Name(i)}");                  // its veth end goes with it, and the peer with that
            }
        }
        Run("ip", $"link del {Bridge}");
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string Bridge => $"lsqb{_tag}";

    private string Launcher => Path.Combine(_root, "netns-launcher.sh");

    /// <summary>Hydra's ssh launcher runs <c>EXEC [ssh options] HOST "PROXY COMMAND"</c>; this one enters HOST's
    /// namespace instead, hides the other hosts' folders and starts the proxy in HOST's own folder.</summary>
    private string LauncherScript()
    {
        var cases = Enumerable.Range(0, Count).Select(i =>
        {
            var hide = string.Concat(Enumerable.Range(0, Count).Where(j => j != i).Select(j => $"mount -t tmpfs lsq-span-hidden '{Dir(j)}' && "));
            return $"  {Name(i)}) exec ip netns exec \"$host\" sh -c \"{hide}cd '{Dir(i)}' && exec $*\" ;;";
        });
        return "#!/bin/sh\n" +
               "while [ \"${1#-}\" != \"$1\" ]; do shift; done   # ssh's options (-x)\n" +
               "host=$1; shift\n" +
               "case \"$host\" in\n" + string.Join("\n", cases) + "\nesac\n" +
               "echo \"netns-launcher: unknown host $host\" >&2; exit 1\n";
    }

    private void Ip(string args)
    {
        var (code, _, error) = Run("ip", args);
        if (code != 0) throw new InvalidOperationException($"ip {args}: {error.Trim()}");
    }

    private void OnExit(object? sender, EventArgs e) => Dispose();

    private static (int Code, string Output, string Error) Run(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }
}
