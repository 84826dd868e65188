using System.Diagnostics;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>
/// A separate "machine" on this one: a network namespace <c>lsq-…</c> with a veth pair to the root namespace,
/// 10.77.&lt;subnet&gt;.1 on the root side (where the API listens) and 10.77.&lt;subnet&gt;.2 inside. A process started with
/// <see cref="Command"/> sees only that link and its own loopback. Disposing deletes the namespace (which takes its
/// end of the veth pair, and so the pair, with it) — also after a failed test; names are unique per instance.
/// Needs root and iproute2: <see cref="SkipReason"/> says why not, for a test to skip with.
/// </summary>
public sealed class NetworkNamespace : IDisposable
{
    public string Name { get; }
    /// <summary>The root namespace's address on this link: what a process inside reaches the API at.</summary>
    public string RootAddress { get; }
    /// <summary>The namespace's own address.</summary>
    public string Address { get; }
    private readonly string _rootLink;

    private NetworkNamespace(string name, string rootLink, int subnet)
    {
        Name = name;
        _rootLink = rootLink;
        RootAddress = $"10.77.{subnet}.1";
        Address = $"10.77.{subnet}.2";
    }

    private static readonly string? Ip = new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.FirstOrDefault(File.Exists);

    /// <summary>Null when namespaces can be made here; else why not (not root, no `ip`, the kernel refuses).</summary>
    public static readonly string? SkipReason = Probe();

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces need Linux";
        if (Ip == null) return "`ip` (iproute2) is not installed: apt-get install iproute2";
        if (!Environment.IsPrivilegedProcess) return "network namespaces need root (ip netns add); run the tests as root";
        var probe = $"lsq-probe-{Environment.ProcessId}";
        var (code, error) = Run("netns", "add", probe);
        if (code != 0) return $"`ip netns add` failed here: {error.Trim()}";
        Run("netns", "delete", probe);
        return null;
    }

    /// <summary>A namespace linked to the root namespace over 10.77.<paramref name="subnet"/>.0/24 (1 to 254).</summary>
    public static NetworkNamespace Create(int subnet)
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        var ns = new NetworkNamespace($"lsq-{id}", $"lsq{id}r", subnet);
        try
        {
            var inner = $"lsq{id}h";
            Must("netns", "add", ns.Name);
            Must("link", "add", ns._rootLink, "type", "veth", "peer", "name", inner);
            Must("link", "set", inner, "netns", ns.Name);
            Must("addr", "add", $"{ns.RootAddress}/24", "dev", ns._rootLink);
            Must("link", "set", ns._rootLink, "up");
            Must("-n", ns.Name, "addr", "add", $"{ns.Address}/24", "dev", inner);
            Must("-n", ns.Name, "link", "set", inner, "up");
            Must("-n", ns.Name, "link", "set", "lo", "up");
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    /// <summary>The argv that runs <paramref name="command"/> inside the namespace.</summary>
    public string[] Command(params string[] command) => [Ip!, "netns", "exec", Name, .. command];

    /// <summary>As <see cref="Command"/>, in a mount namespace of its own where each of <paramref name="hidden"/> is an empty
    /// tmpfs: a "machine" that cannot see those folders of this one (the API's data directory) even by path.</summary>
    public string[] Command(IReadOnlyList<string> hidden, params string[] command) => CommandIn(Name, hidden, command);

    /// <summary>As <see cref="Command(IReadOnlyList{string}, string[])"/>, in any namespace <paramref name="ns"/> (e.g. one of <c>NamespaceHosts</c>).</summary>
    public static string[] CommandIn(string ns, IReadOnlyList<string> hidden, params string[] command) =>
        [Ip ?? "ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            "n=$1; shift; while [ \"$n\" -gt 0 ]; do mount -t tmpfs -o size=1m,mode=0555 lsq-hidden \"$1\" || exit 70; shift; n=$((n-1)); done; exec \"$@\"",
            "sh", hidden.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), .. hidden, .. command];

    public void Dispose()
    {
        Run("netns", "delete", Name);
        Run("link", "delete", _rootLink); // gone with the namespace already, unless it was never moved there
    }

    private static void Must(params string[] args)
    {
        var (code, error) = Run(args);
        if (code != 0) throw new InvalidOperationException($"ip {string.Join(' ', args)}: {error.Trim()}");
    }

    private static (int Code, string Error) Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Ip ?? "ip") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, error);
    }
}

/// <summary>A fact that needs network namespaces: skipped, with the reason, where they cannot be made.</summary>
public sealed class NetworkNamespaceFactAttribute : FactAttribute
{
    public NetworkNamespaceFactAttribute()
    {
        if (NetworkNamespace.SkipReason is { } why) Skip = why;
    }
}
