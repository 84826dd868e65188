using System.Diagnostics;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>The trainer CLI as a real child process: <c>dotnet trainer.dll ARGS</c> from the test's output folder.</summary>
internal static class TrainerProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    internal static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "trainer.dll");

    /// <summary>Starts the trainer without waiting for it (output redirected), with extra environment variables.</summary>
    public static Process Start(string workingDir, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        Assert.True(File.Exists(Dll), $"{Dll} not found (the test project references src/Trainer, which copies it)");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("LONGSEQ_DEBUG");
        // Tiny models gain nothing from intra-op threads, and OpenMP workers spinning on 2 shared cores
        // (other tests run beside this one) made a one-step run take 20 s instead of 2.
        psi.Environment["OMP_NUM_THREADS"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    public static Result Run(string workingDir, TimeSpan timeout, params string[] args) => RunWith(null, workingDir, timeout, args);

    /// <summary>The same, with <paramref name="environment"/> added to the child's environment.</summary>
    public static Result RunWith(IReadOnlyDictionary<string, string>? environment, string workingDir, TimeSpan timeout, params string[] args)
    {
        using var p = Start(workingDir, environment, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"trainer {string.Join(' ', args)} did not finish within {timeout}");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static Result Run(string workingDir, params string[] args) => Run(workingDir, TimeSpan.FromSeconds(120), args);
}
