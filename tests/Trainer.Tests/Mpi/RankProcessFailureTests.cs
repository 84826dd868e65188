using System.Diagnostics;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>
/// A run launched as processes ends cleanly when a rank fails — with that rank's error, within seconds,
/// never a hang — and leaves no process behind, also when the launcher itself is killed. Runs the real
/// CLI (<c>trainer train … --launch processes</c>); every process it starts carries a marker in its
/// environment, so the test can look for survivors.
/// </summary>
public class RankProcessFailureTests
{
    private static readonly string Config = Path.Combine(RepoPaths.Root, "examples", "sft_tiny_llama.yaml");

    [MpiFact]
    [Trait("Category", "Slow")]
    public void Train_RankDiesMidRun_EndsWithThatRanksErrorAndNoSurvivors()
    {
        var marker = Guid.NewGuid().ToString("N");
        var (code, stderr, seconds) = RunTrainer(marker, "1:2", maxSteps: 200);

        Assert.Equal(1, code);
        Assert.Contains("rank 1 failed", stderr);
        Assert.Contains("rank 1 dies before step 2", stderr);
        Assert.True(seconds < 60, $"the run took {seconds:F0} s to fail");
        Assert.Empty(Survivors(marker));
    }

    [MpiFact]
    public void Train_RankThrows_ErrorNamesTheRankAndTheException()
    {
        var marker = Guid.NewGuid().ToString("N");
        var (code, stderr, _) = RunTrainer(marker, "1:1:throw", maxSteps: 200);

        Assert.Equal(1, code);
        Assert.Contains("error: rank 1 failed: InvalidOperationException: LONGSEQ_FAILFAST_RANK_AT_STEP: rank 1 fails at step 1", stderr);
        Assert.Empty(Survivors(marker));
    }

    [MpiFact]
    [Trait("Category", "Slow")]
    public void Train_LauncherKilled_RankProcessesEndThemselves()
    {
        var marker = Guid.NewGuid().ToString("N");
        var output = Directory.CreateTempSubdirectory("mpi-kill-").FullName;
        using var launcher = Start(marker, null, maxSteps: 100_000, output);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!File.Exists(Path.Combine(output, "trainer_log.jsonl")) && DateTime.UtcNow < deadline) Thread.Sleep(200);
        Assert.True(File.Exists(Path.Combine(output, "trainer_log.jsonl")), "training never started");
        Assert.NotEmpty(Survivors(marker));

        launcher.Kill();                                    // SIGKILL: the launcher cannot clean up after itself

        var gone = DateTime.UtcNow.AddSeconds(10);
        while (Survivors(marker).Count > 0 && DateTime.UtcNow < gone) Thread.Sleep(200);
        Assert.Empty(Survivors(marker));
        Directory.Delete(output, recursive: true);
    }

    private static (int Code, string Stderr, double Seconds) RunTrainer(string marker, string drill, int maxSteps)
    {
        var output = Directory.CreateTempSubdirectory("mpi-fail-").FullName;
        var clock = Stopwatch.StartNew();
        using var p = Start(marker, drill, maxSteps, output);
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(entireProcessTree: true); Assert.Fail("the run hung for 120 s after a rank failed"); }
        Directory.Delete(output, recursive: true);
        return (p.ExitCode, stderr.Result, clock.Elapsed.TotalSeconds);
    }

    private static Process Start(string marker, string? drill, int maxSteps, string output)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "trainer.dll"), "train", Config, "--output_dir", output,
                     "--overwrite_output_dir", "true", "--max_steps", maxSteps.ToString(), "--sequence_parallel_size", "2", "--launch", "processes" })
            psi.ArgumentList.Add(a);
        psi.Environment["LONGSEQ_TEST_MARKER"] = marker;
        if (drill != null) psi.Environment[RankWorker.FailFastVariable] = drill;
        var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync();
        return p;
    }

    /// <summary>Live processes (not zombies) whose environment carries the marker.</summary>
    private static List<int> Survivors(string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                if (stat[(stat.LastIndexOf(')') + 2)] == 'Z') continue;
                if (File.ReadAllText(Path.Combine(dir, "environ")).Contains("LONGSEQ_TEST_MARKER=" + marker)) found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }
}
