using System.Diagnostics;
using System.Text.Json.Nodes;
using LongSeqService.Trainer.Tests.Cli;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>
/// <c>mpi_hosts</c>: one run's MPI world on two hosts made of network namespaces (<see cref="NamespaceHosts"/>),
/// two ranks each, started from the first, the second seeing none of the first's files (dataset, request,
/// output_dir), ranks talking over the veth (UCX tcp).
/// </summary>
public sealed class SpanningWorldTests
{
    private static string[] TrainArgs(string outputDir, int maxSteps, params string[] more) =>
    [
        "train", "--model_name_or_path", "builtin:tiny-llama", "--dataset", "identity.json", "--template", "llama3", "--output_dir", outputDir,
        "--sequence_parallel_size", "4", "--launch", "processes", "--max_steps", maxSteps.ToString(), "--cutoff_len", "64",
        "--logging_steps", "1", "--seed", "7", "--learning_rate", "1e-3", .. more,
    ];

    private static Process StartAcross(NamespaceHosts hosts, string outputDir, int maxSteps, string? mpiHosts = null, params string[] more)
    {
        var data = Path.Combine(hosts.Dir(0), "identity.json");
        if (!File.Exists(data)) File.Copy(RepoPaths.Data("identity.json"), data);
        var env = hosts.LaunchEnvironment(launchingHost: 0);
        env["OMP_NUM_THREADS"] = "1";                                   // as TrainerProcess: the single-host run beside it has the same
        return hosts.Start(0, env, "dotnet", [TrainerProcess.Dll, .. TrainArgs(outputDir, maxSteps, more), "--mpi_hosts", mpiHosts ?? hosts.MpiHosts(slots: 2)]);
    }

    /// <summary>A long run across the hosts, once it has logged two steps; its stderr, read to the end.</summary>
    private static async Task<(Process Trainer, Task<string> Stderr)> StartedAcrossAsync(NamespaceHosts hosts, string output)
    {
        var log = Path.Combine(output, "trainer_log.jsonl");
        var trainer = StartAcross(hosts, output, maxSteps: 2000);
        var stderr = trainer.StandardError.ReadToEndAsync();
        _ = trainer.StandardOutput.ReadToEndAsync();
        for (var deadline = DateTime.UtcNow.AddMinutes(2); !(File.Exists(log) && File.ReadAllLines(log).Length >= 2); await Task.Delay(50))
            Assert.True(DateTime.UtcNow < deadline && !trainer.HasExited, "the run never logged 2 steps: " + (trainer.HasExited ? await stderr : ""));
        return (trainer, stderr);
    }

    private static async Task<string> RunAcross(NamespaceHosts hosts, string outputDir, int maxSteps, params string[] more)
    {
        using var trainer = StartAcross(hosts, outputDir, maxSteps, null, more);
        var stderr = trainer.StandardError.ReadToEndAsync();
        _ = trainer.StandardOutput.ReadToEndAsync();
        Assert.True(trainer.WaitForExit(TimeSpan.FromMinutes(3)), "the run across hosts did not finish in 3 minutes");
        Assert.True(trainer.ExitCode == 0, await stderr);
        return await stderr;
    }

    [NamespaceHostsFact]
    [Trait("Category", "Slow")]
    public void FirstHost_NotTheLaunchingOne_FailsSayingSo()
    {
        using var hosts = new NamespaceHosts(2);
        var output = Path.Combine(hosts.Dir(0), "out");
        using var trainer = StartAcross(hosts, output, maxSteps: 2, mpiHosts: $"{hosts.Name(1)}:2,{hosts.Name(0)}:2");
        var stderr = trainer.StandardError.ReadToEndAsync();
        _ = trainer.StandardOutput.ReadToEndAsync();
        Assert.True(trainer.WaitForExit(TimeSpan.FromMinutes(2)), "the launch did not end");

        Assert.NotEqual(0, trainer.ExitCode);
        Assert.True(stderr.Result.Contains("rank 0 failed: InvalidOperationException: rank 0 runs on a host without"), stderr.Result);
        Assert.Contains("the first host in mpi_hosts must be the one that launches the run", stderr.Result);
        Assert.False(File.Exists(Path.Combine(output, "trainer_log.jsonl")));
    }

    [NamespaceHostsFact]
    [Trait("Category", "Slow")]
    public void SequenceParallel_AcrossTwoNamespaceHosts_MatchesOneHostBitForBit()
    {
        using var hosts = new NamespaceHosts(2);
        var across = Path.Combine(hosts.Dir(0), "out");
        long received = hosts.ReceivedBytes(1);

        using var trainer = StartAcross(hosts, across, maxSteps: 3);
        var stderr = trainer.StandardError.ReadToEndAsync();
        _ = trainer.StandardOutput.ReadToEndAsync();
        Assert.True(trainer.WaitForExit(TimeSpan.FromMinutes(3)), "the run across hosts did not finish in 3 minutes");
        Assert.True(trainer.ExitCode == 0, stderr.Result);

        var oneHost = Directory.CreateTempSubdirectory("span-one-host-").FullName;
        try
        {
            File.Copy(RepoPaths.Data("identity.json"), Path.Combine(oneHost, "identity.json"));
            var single = TrainerProcess.Run(oneHost, TimeSpan.FromMinutes(3), TrainArgs(Path.Combine(oneHost, "out"), maxSteps: 3));
            Assert.True(single.ExitCode == 0, single.ToString());
            // Same ranks, same per-rank arithmetic, collectives summed in rank order: the transport changes no bit.
            Assert.Equal(Losses(Path.Combine(oneHost, "out")), Losses(across));
            Assert.Equal(File.ReadAllBytes(Path.Combine(oneHost, "out", "model.safetensors")), File.ReadAllBytes(Path.Combine(across, "model.safetensors")));
        }
        finally { Directory.Delete(oneHost, recursive: true); }

        Assert.Equal(3, Losses(across).Length);
        // The second host saw none of the first's files, and the ranks' traffic went over its veth.
        Assert.NotEqual(0, hosts.RunAsProxy(1, $"test -e {Path.Combine(hosts.Dir(0), "identity.json")}"));
        Assert.Equal(0, hosts.RunAsProxy(0, $"test -e {Path.Combine(hosts.Dir(0), "identity.json")}"));
        Assert.True(hosts.ReceivedBytes(1) - received > 1 << 20, $"host 1 received {hosts.ReceivedBytes(1) - received} bytes on its veth");
    }

    [NamespaceHostsFact]
    [Trait("Category", "Slow")]
    public async Task LostHost_KilledMidRun_EndsTheLaunchPromptlyNamingIt()
    {
        using var hosts = new NamespaceHosts(2);
        var output = Path.Combine(hosts.Dir(0), "out");
        var (trainer, stderr) = await StartedAcrossAsync(hosts, output);
        using var _ = trainer;

        Assert.True(hosts.KillAll(1) >= 3, "host 1 should run Hydra's proxy and two ranks");
        var watch = Stopwatch.StartNew();

        Assert.True(trainer.WaitForExit(TimeSpan.FromSeconds(30)), "the launch did not end within 30 s of losing a host");
        watch.Stop();
        Assert.NotEqual(0, trainer.ExitCode);
        var error = await stderr;
        Assert.True(error.Contains($"host {hosts.Name(1)} (ranks 2–3) was lost"), error);
        // mpiexec ended the ranks of the host that survived (their SIGKILL and reaping may trail mpiexec's own exit)
        for (var until = DateTime.UtcNow.AddSeconds(5); hosts.ProcessCount(0) > 0 && DateTime.UtcNow < until;) await Task.Delay(50);
        Assert.True(hosts.ProcessCount(0) == 0, $"{hosts.ProcessCount(0)} processes still run on the host that survived");
        Assert.False(File.Exists(Path.Combine(output, "model.safetensors")));
        Console.WriteLine($"launch ended {watch.Elapsed.TotalSeconds:F2} s after host 1 was lost");
    }

    /// <summary>Cancelling a run across hosts: the trainer host signals its trainer's process group (SIGTERM), which
    /// holds mpiexec and the local ranks only; the ranks on the other host must end too — through Hydra, their proxy
    /// losing mpiexec — leaving nothing running anywhere.</summary>
    [NamespaceHostsFact]
    [Trait("Category", "Slow")]
    public async Task Cancelled_SigtermToTheLauncher_EndsEveryRankOnBothHosts()
    {
        using var hosts = new NamespaceHosts(2);
        var output = Path.Combine(hosts.Dir(0), "out");
        var (trainer, stderr) = await StartedAcrossAsync(hosts, output);
        using var _ = trainer;
        Assert.True(hosts.ProcessCount(1) >= 3, "host 1 should run Hydra's proxy and two ranks");

        using (var kill = Process.Start("kill", $"-TERM {trainer.Id}")) kill.WaitForExit();
        var watch = Stopwatch.StartNew();
        Assert.True(trainer.WaitForExit(TimeSpan.FromSeconds(30)), "the launch did not end within 30 s of SIGTERM");
        for (var until = DateTime.UtcNow.AddSeconds(10); (hosts.ProcessCount(0) > 0 || hosts.ProcessCount(1) > 0) && DateTime.UtcNow < until;) await Task.Delay(50);
        watch.Stop();
        Assert.True(hosts.ProcessCount(1) == 0, $"{hosts.ProcessCount(1)} processes still run on the other host");
        Assert.True(hosts.ProcessCount(0) == 0, $"{hosts.ProcessCount(0)} processes still run on the launching host");
        Assert.NotEqual(0, trainer.ExitCode);
        Assert.False(File.Exists(Path.Combine(output, "model.safetensors")));
        Console.WriteLine($"every rank on both hosts ended {watch.Elapsed.TotalSeconds:F2} s after SIGTERM");
    }

    /// <summary>mpiexec does not notice a host its launcher cannot reach (ssh failing at once): it leaves the launcher a
    /// zombie and the other ranks wait in MPI_Init forever. The launch ends instead, naming the host.</summary>
    [NamespaceHostsFact]
    [Trait("Category", "Slow")]
    public async Task UnreachableHost_LaunchEndsPromptlyNamingIt()
    {
        using var hosts = new NamespaceHosts(2);
        var output = Path.Combine(hosts.Dir(0), "out");
        var watch = Stopwatch.StartNew();
        using var trainer = StartAcross(hosts, output, maxSteps: 2, mpiHosts: $"{hosts.Name(0)}:2,nosuchhost:2");
        var stderr = trainer.StandardError.ReadToEndAsync();
        _ = trainer.StandardOutput.ReadToEndAsync();

        Assert.True(trainer.WaitForExit(TimeSpan.FromSeconds(60)), "the launch did not end within 60 s with a host it cannot reach");
        watch.Stop();
        Assert.NotEqual(0, trainer.ExitCode);
        var error = await stderr;
        Assert.True(error.Contains("HostLost: host nosuchhost (ranks 2–3) could not be reached"), error);
        Assert.Contains("netns-launcher: unknown host nosuchhost", error);       // what the launcher said, passed on
        for (var until = DateTime.UtcNow.AddSeconds(5); hosts.ProcessCount(0) > 0 && DateTime.UtcNow < until;) await Task.Delay(50);
        Assert.True(hosts.ProcessCount(0) == 0, $"{hosts.ProcessCount(0)} processes still run on the host that was reached");
        Console.WriteLine($"launch with an unreachable host ended after {watch.Elapsed.TotalSeconds:F2} s");
    }

    /// <summary>ZeRO across hosts: the ranks on host 1 do not see the checkpoint folder, so they send their optimizer
    /// partitions to rank 0; resumed from that checkpoint across the hosts again (the partitions sent back out), the run
    /// ends with the very model of an uninterrupted run on one host.</summary>
    [NamespaceHostsFact]
    [Trait("Category", "Slow")]
    public async Task ZeroStage3_AcrossTwoHosts_CheckpointHoldsEveryPartitionAndResumesToTheOneHostModel()
    {
        using var hosts = new NamespaceHosts(2);
        var across = Path.Combine(hosts.Dir(0), "out");
        string[] zero = ["--zero_stage", "3", "--save_steps", "2"];
        await RunAcross(hosts, across, 4, zero);                                            // checkpoint-2 on the way
        var checkpoint = Path.Combine(across, "checkpoint-2");
        var parts = Directory.GetFiles(checkpoint, "optimizer-*.safetensors");
        Assert.Equal(4, parts.Length);                                                      // host 1's two came over MPI
        Assert.All(parts, p => Assert.True(new FileInfo(p).Length > 0, p));
        Assert.NotEqual(0, hosts.RunAsProxy(1, $"test -e {across}/checkpoint-2"));           // nothing of it on host 1's disk

        var resumed = Path.Combine(hosts.Dir(0), "resumed");
        await RunAcross(hosts, resumed, 4, [.. zero, "--resume_from_checkpoint", checkpoint]);

        var oneHost = Directory.CreateTempSubdirectory("span-zero-one-host-").FullName;
        try
        {
            File.Copy(RepoPaths.Data("identity.json"), Path.Combine(oneHost, "identity.json"));
            var single = TrainerProcess.Run(oneHost, TimeSpan.FromMinutes(3), TrainArgs(Path.Combine(oneHost, "out"), 4, zero));
            Assert.True(single.ExitCode == 0, single.ToString());
            var model = File.ReadAllBytes(Path.Combine(oneHost, "out", "model.safetensors"));
            Assert.Equal(Losses(Path.Combine(oneHost, "out")), Losses(across));
            Assert.Equal(model, File.ReadAllBytes(Path.Combine(across, "model.safetensors")));
            Assert.Equal(Losses(Path.Combine(oneHost, "out"))[2..], Losses(resumed)[^2..]);
            Assert.Equal(model, File.ReadAllBytes(Path.Combine(resumed, "model.safetensors")));
        }
        finally { Directory.Delete(oneHost, recursive: true); }
    }

    private static double[] Losses(string outputDir) =>
        File.ReadAllLines(Path.Combine(outputDir, "trainer_log.jsonl")).Select(l => (double)JsonNode.Parse(l)!["loss"]!).ToArray();
}
