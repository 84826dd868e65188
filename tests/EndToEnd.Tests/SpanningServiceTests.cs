using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using LongSeqService.Trainer.Tests.Mpi;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>
/// A job whose world spans hosts, through the whole service: two trainer hosts of two slots each, each a network
/// namespace on one bridge (<see cref="NamespaceHosts"/>: they reach each other and the API, which listens on the
/// bridge), with their own disks (artifacts: remote; the API's data directory hidden from them), registered with an
/// MPI host name. An SP=4 job (no host can hold it) is placed across both; the first host launches the world
/// (mpi_hosts from the binding), the second only holds its slots while Hydra's proxy runs its ranks. Its losses match
/// SP=4 on one host bit for bit (same spec, same seed, same data). Killing the second host mid-run requeues the job;
/// once that host's trainer host is back, it is placed on the two hosts again and resumes from its last checkpoint.
/// </summary>
[Trait("Category", "Slow")]
public sealed class SpanningServiceTests
{
    private sealed record Cluster(SystemUnderTest System, NamespaceHosts Hosts, HttpClient Api, List<string> Roots) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Api.Dispose();
            await System.DisposeAsync();
            Hosts.Dispose();
            foreach (var r in Roots) try { Directory.Delete(r, true); } catch (IOException) { }
        }
    }

    private sealed record TrainerHostProcess(string Name, string Key, Process Process);

    private static async Task<Cluster> StartClusterAsync()
    {
        var hosts = new NamespaceHosts(2);
        var system = new SystemUnderTest { StartsHost = false };
        system.ApiEnvironment["Kestrel__Endpoints__Loop__Url"] = $"http://127.0.0.1:{system.Port}";
        system.ApiEnvironment["Kestrel__Endpoints__Bridge__Url"] = $"http://{hosts.BridgeAddress}:{system.Port}";
        system.ApiEnvironment["Scheduler__HostTimeoutSeconds"] = "8";
        system.ApiEnvironment["Scheduler__HeartbeatSeconds"] = "1";
        system.ApiEnvironment["Scheduler__LivenessCron"] = "*/1 * * * * *";
        try { await system.InitializeAsync(); }
        catch
        {
            await system.DisposeAsync();
            hosts.Dispose();
            throw;
        }
        var api = system.Client();
        api.Timeout = TimeSpan.FromMinutes(5);   // the first submission builds the builtin's tokenizer: over 60 s on a loaded 2-core machine
        return new Cluster(system, hosts, api, []);
    }

    /// <summary>Host <paramref name="i"/>'s trainer host, inside its namespace: its own key, its own state folder (in its own
    /// folder, which the other host's ranks cannot see), the API's data directory hidden, the launcher and interface of
    /// the namespace hosts for the worlds it launches. The same name and key again is the same host restarting.</summary>
    private static async Task<TrainerHostProcess> StartHostAsync(Cluster c, int i, TrainerHostProcess? again = null)
    {
        var key = again?.Key ?? (await (await c.Api.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("hosts", KeyRoles.Host, $"namespace host {i}"), WireJson.Options))
            .Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
        var dir = c.Hosts.Dir(i);
        var keyFile = Path.Combine(dir, "host.key");
        await File.WriteAllTextAsync(keyFile, key);
        var name = again?.Name ?? $"span-{i}-{Guid.NewGuid():N}"[..14];
        var argv = NetworkNamespace.CommandIn(c.Hosts.Name(i), [c.System.DataDir], "dotnet", Path.Combine(SystemUnderTest.Bin("Trainer"), "trainer.dll"), "host",
            "--api", $"http://{c.Hosts.BridgeAddress}:{c.System.Port}", "--token-file", keyFile, "--slots", "2", "--name", name,
            "--state-dir", Path.Combine(dir, "state"), "--artifacts", "remote", "--mpi-host", c.Hosts.Name(i));
        var env = c.Hosts.LaunchEnvironment(launchingHost: i);
        var process = c.System.StartHostProcess($"host-{i}", argv, env, dir, sharedDataDir: false);
        await WaitFor(async () => (await c.Api.GetStringAsync("/v1/hosts")).Contains(name), TimeSpan.FromMinutes(2), c.System);
        return new TrainerHostProcess(name, key, process);
    }

    private static async Task<Guid> SubmitAsync(Cluster c, int steps, int saveSteps)
    {
        var dataset = await SystemUnderTest.UploadDatasetIdAsync(c.Api, "identity.json");
        var submitted = await c.Api.PostAsJsonAsync("/v1/jobs", new JsonObject
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = "sft", ["dataset"] = dataset, ["template"] = "llama3",
            ["sequence_parallel_size"] = 4, ["launch"] = "processes", ["max_steps"] = steps, ["cutoff_len"] = 64,
            ["logging_steps"] = 1, ["save_steps"] = saveSteps, ["seed"] = 7, ["learning_rate"] = 1e-3,
        });
        Assert.True(submitted.StatusCode == HttpStatusCode.Created, await submitted.Content.ReadAsStringAsync());
        return (await submitted.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
    }

    private static async Task<JobDto> WaitForEndAsync(Cluster c, Guid job, TimeSpan timeout)
    {
        JobDto dto = null!;
        await WaitFor(async () => JobStates.IsTerminal((dto = (await c.Api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!).State), timeout, c.System);
        Assert.True(dto.State == JobStates.Succeeded, $"job ended {dto.State}: {dto.Error}\n{await c.Api.GetStringAsync($"/v1/jobs/{job}/events")}\n{c.System.Logs()}");
        return dto;
    }

    [NamespaceHostsFact]
    public async Task SpFourOnTwoHostsOfTwo_PlacedAcrossBoth_LossesMatchOneHost()
    {
        const int steps = 4;
        await using var c = await StartClusterAsync();
        await StartHostAsync(c, 0);
        await StartHostAsync(c, 1);
        long received = c.Hosts.ReceivedBytes(1);

        var job = await SubmitAsync(c, steps, saveSteps: 100);
        var final = await WaitForEndAsync(c, job, TimeSpan.FromMinutes(6));

        var events = await c.Api.GetStringAsync($"/v1/jobs/{job}/events");
        Assert.Contains("across 2 hosts", events);
        // The world ran over the veth: the second host's ranks received their share of the ring's traffic.
        Assert.True(c.Hosts.ReceivedBytes(1) - received > 1 << 20, $"host 1 received {c.Hosts.ReceivedBytes(1) - received} bytes");
        Assert.Contains(c.System.Logs().Split('\n'), l => l.StartsWith("[host-1]") && l.Contains("holds slots here in a world that spans hosts"));

        // The same run on one host: the config the launching host wrote, without mpi_hosts, SP=4 as processes here.
        var (config, across) = RunFiles(c, job);
        var spec = JsonNode.Parse(await File.ReadAllTextAsync(config))!.AsObject();
        Assert.Equal($"{c.Hosts.Name(0)}:2,{c.Hosts.Name(1)}:2", (string?)spec["mpi_hosts"]);
        var oneHost = Directory.CreateTempSubdirectory("longseq-span-onehost-").FullName;
        c.Roots.Add(oneHost);
        spec.Remove("mpi_hosts");
        spec["output_dir"] = Path.Combine(oneHost, "out");
        spec["resume_from_checkpoint"] = null;
        var single = Path.Combine(oneHost, "config.json");
        await File.WriteAllTextAsync(single, spec.ToJsonString());
        var (code, output) = await RunTrainerAsync(oneHost, TimeSpan.FromMinutes(4), "train", single);
        Assert.True(code == 0, output);

        var reference = Losses(Path.Combine(oneHost, "out"));
        Assert.Equal(steps, reference.Length);
        Assert.Equal(reference, Losses(across));
        var metrics = await c.Api.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics");
        Assert.Equal(reference, metrics!.OrderBy(m => m.Step).Select(m => m.Record.Loss!.Value).ToArray());
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(oneHost, "out", "model.safetensors")),
            await c.Api.GetByteArrayAsync($"/v1/jobs/{job}/artifacts/model.safetensors"));
    }

    [NamespaceHostsFact]
    public async Task SpanHostKilledMidRun_JobRequeuedAndResumesOnBothHostsFromItsLastCheckpoint()
    {
        const int steps = 30;
        await using var c = await StartClusterAsync();
        var a = await StartHostAsync(c, 0);
        var b = await StartHostAsync(c, 1);
        var job = await SubmitAsync(c, steps, saveSteps: 4);
        var store = Path.Combine(c.System.DataDir, "jobs", job.ToString(), "output");

        // Once the API's store holds an uploaded checkpoint, the host that only runs ranks dies with all its processes.
        await WaitFor(() => Task.FromResult(Directory.Exists(store) && Directory.EnumerateDirectories(store, "checkpoint-*")
            .Any(d => File.Exists(Path.Combine(d, "trainer_state.json")))), TimeSpan.FromMinutes(5), c.System);
        var launching = (await c.Api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
        Assert.Equal(JobStates.Running, launching.State);
        int other = launching.HostId == await HostIdAsync(c, a.Name) ? 1 : 0;
        var killed = other == 1 ? b : a;
        Assert.True(c.Hosts.KillAll(other) >= 3, "the host should run its trainer host, Hydra's proxy and two ranks");
        await killed.Process.WaitForExitAsync();

        // The attempt is lost with its host and the job waits: the surviving host alone has 2 of the 4 slots.
        await WaitFor(async () => (await c.Api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!.State == JobStates.Queued
            && (await c.Api.GetStringAsync($"/v1/hosts/{await HostIdAsync(c, killed.Name)}")).Contains("\"lost\""), TimeSpan.FromMinutes(2), c.System);
        var atLoss = (await c.Api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
        Assert.True((atLoss.CurrentStep ?? 0) < steps, "the job finished before its host was killed");
        var uploaded = Directory.EnumerateDirectories(store, "checkpoint-*").Where(d => File.Exists(Path.Combine(d, "trainer_state.json"))).Select(Path.GetFileName).ToList();

        // Its trainer host back (same name, same key): the job is placed on the two hosts again and resumes.
        await StartHostAsync(c, other, killed);
        var final = await WaitForEndAsync(c, job, TimeSpan.FromMinutes(8));
        // Exactly once more: the launching host named the lost host, which was held out of spanning worlds until it
        // registered again — not placed onto while dead (it stays online until its heartbeat times out), attempt after attempt.
        Assert.Equal(2, final.Attempt);
        var events = await c.Api.GetStringAsync($"/v1/jobs/{job}/events");
        Assert.Contains("lost", events);
        Assert.Contains("requeued", events);
        // The last attempt resumed (on the launching host; the other host's ranks got the checkpoint from rank 0 over MPI).
        Assert.NotEmpty(uploaded);
        Assert.Contains(c.System.Logs().Split('\n'), l => l.Contains($"attempt {final.Attempt}: starting") && l.Contains("resuming from checkpoint-"));
        Assert.True(System.Text.RegularExpressions.Regex.Count(events, "across 2 hosts") >= 2, "placed across both hosts again: " + events);
        var metrics = await c.Api.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics");
        Assert.Equal(Enumerable.Range(1, steps), metrics!.Select(m => m.Step));
        foreach (var e in JsonNode.Parse(events)!["data"]!.AsArray()) Console.WriteLine($"{e!["at"]} {e["to_state"]}: {e["reason"]}");
    }

    private static async Task<int> HostIdAsync(Cluster c, string name)
    {
        var hosts = JsonNode.Parse(await c.Api.GetStringAsync("/v1/hosts"))!["data"]!.AsArray();
        return (int)hosts.First(h => (string?)h!["name"] == name)!["id"]!;
    }

    /// <summary>The run file the launching host wrote for <paramref name="job"/> (STATE-DIR/runs/JOB/config.json) and its local output folder.</summary>
    private static (string Config, string Output) RunFiles(Cluster c, Guid job)
    {
        var config = Enumerable.Range(0, c.Hosts.Count).Select(i => Path.Combine(c.Hosts.Dir(i), "state", "runs", job.ToString(), "config.json")).Single(File.Exists);
        var output = (string)JsonNode.Parse(File.ReadAllText(config))!["output_dir"]!;
        return (config, output);
    }

    private static async Task<(int Code, string Output)> RunTrainerAsync(string workDir, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(SystemUnderTest.Bin("Trainer"), "trainer.dll") }.Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); return (-1, "timed out\n" + await stderr); }
        return (p.ExitCode, await stdout + await stderr);
    }

    private static double[] Losses(string outputDir) =>
        File.ReadAllLines(Path.Combine(outputDir, "trainer_log.jsonl")).Select(l => (double)JsonNode.Parse(l)!["loss"]!).ToArray();

    private static async Task WaitFor(Func<Task<bool>> condition, TimeSpan timeout, SystemUnderTest system)
    {
        for (var deadline = DateTime.UtcNow + timeout; !await condition(); await Task.Delay(300))
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"condition not met within {timeout}\n{system.Logs()}");
    }
}
