using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using LongSeqService.Trainer.Model;
using TorchSharp;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>
/// Hosts with their own disks, as separate machines: each trainer host runs in its own network namespace
/// (<see cref="NetworkNamespace"/>), reaches the API only over its veth link, has its own state folder and working
/// folder, is never told the API's data directory and cannot see it (an empty tmpfs over it in its mount namespace). A job trains on the first; once that host
/// has uploaded a checkpoint it is killed, and the job is requeued onto a second namespace host, which downloads the
/// uploaded checkpoint and resumes from it. The model the run uploaded downloads from the API and loads.
/// </summary>
[Trait("Category", "Slow")]
public sealed class RemoteHostTests
{
    private const int Steps = 30;

    [NetworkNamespaceFact]
    public async Task NamespaceHosts_NoSharedFolder_TrainUploadResumeOnAnotherHostAndTheModelLoads()
    {
        using var a = NetworkNamespace.Create(Random.Shared.Next(1, 120));
        using var b = NetworkNamespace.Create(Random.Shared.Next(120, 250));
        var system = new SystemUnderTest { StartsHost = false };
        // The API listens on loopback (for the test) and on the root side of each host's link, nowhere else.
        system.ApiEnvironment["Kestrel__Endpoints__Loop__Url"] = $"http://127.0.0.1:{system.Port}";
        system.ApiEnvironment["Kestrel__Endpoints__A__Url"] = $"http://{a.RootAddress}:{system.Port}";
        system.ApiEnvironment["Kestrel__Endpoints__B__Url"] = $"http://{b.RootAddress}:{system.Port}";
        system.ApiEnvironment["Scheduler__HostTimeoutSeconds"] = "8";
        system.ApiEnvironment["Scheduler__HeartbeatSeconds"] = "1";
        system.ApiEnvironment["Scheduler__LivenessCron"] = "*/1 * * * * *";
        await system.InitializeAsync();
        var roots = new List<string>();
        try
        {
            using var api = system.Client();
            var first = await StartHostAsync(system, api, a, "a", roots);
            await WaitFor(async () => (await api.GetStringAsync("/v1/hosts")).Contains(first.Name), TimeSpan.FromSeconds(120), system);

            var dataset = await SystemUnderTest.UploadDatasetIdAsync(api, "alpaca_en_demo.json");
            var submitted = await api.PostAsJsonAsync("/v1/jobs", new JsonObject
            {
                ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = "sft", ["dataset"] = dataset,
                ["sequence_parallel_size"] = 2, ["max_steps"] = Steps, ["cutoff_len"] = 512, ["per_device_train_batch_size"] = 2,
                ["logging_steps"] = 1, ["save_steps"] = 5, ["learning_rate"] = 1e-3,
            });
            Assert.True(submitted.StatusCode == HttpStatusCode.Created, await submitted.Content.ReadAsStringAsync());
            var job = (await submitted.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
            var output = Path.Combine(system.DataDir, "jobs", job.ToString(), "output");

            // The first checkpoint is on the API's store only once the host uploaded it (trainer_state.json last).
            await WaitFor(() => Task.FromResult(Directory.Exists(output) && Directory.EnumerateDirectories(output, "checkpoint-*")
                .Any(d => File.Exists(Path.Combine(d, "trainer_state.json")))), TimeSpan.FromMinutes(4), system);
            first.Process.Kill(entireProcessTree: true);
            await first.Process.WaitForExitAsync();
            var atKill = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
            Assert.True(atKill.State != JobStates.Succeeded, "the first host finished before it was killed");
            var uploaded = Directory.EnumerateDirectories(output, "checkpoint-*").Where(d => File.Exists(Path.Combine(d, "trainer_state.json"))).Select(Path.GetFileName).ToList();

            var second = await StartHostAsync(system, api, b, "b", roots);
            string state = "";
            await WaitFor(async () => JobStates.IsTerminal(state = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!.State),
                TimeSpan.FromMinutes(6), system);
            var final = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
            Assert.True(state == JobStates.Succeeded, $"job ended {state}: {final.Error}\n{await api.GetStringAsync($"/v1/jobs/{job}/events")}\n{system.Logs()}");
            Assert.True(final.Attempt >= 2, "the run moved to the second host");

            // The second host resumed from a checkpoint the first one uploaded: it downloaded it into its own cache.
            Assert.Contains(system.Logs().Split('\n'), l => l.StartsWith("[host-b]") && l.Contains("resuming from checkpoint-") && uploaded.Any(u => l.Contains(u + ")")));
            var cacheB = Path.Combine(second.Root, "state", "cache", "sha256");
            var resumed = uploaded.Select(u => Path.Combine(output, u!, "trainer_state.json")).Where(File.Exists)
                .Select(f => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));
            Assert.Contains(resumed, h => File.Exists(Path.Combine(cacheB, h)));
            // Every step was reported once (the resumed steps replacing the lost attempt's).
            var metrics = await api.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics");
            Assert.Equal(Enumerable.Range(1, Steps), metrics!.Select(m => m.Step));

            // The uploaded model downloads from the API and loads.
            var dir = Directory.CreateTempSubdirectory("longseq-remote-model-").FullName;
            roots.Add(dir);
            foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json" })
                await File.WriteAllBytesAsync(Path.Combine(dir, f), await api.GetByteArrayAsync($"/v1/jobs/{job}/artifacts/{f}"));
            using var scope = torch.NewDisposeScope();
            var (model, config, _) = ModelLoader.Load(dir, torch.ScalarType.Float32, new SdpaAttention());
            using (model)
            {
                var logits = model.forward(torch.tensor(new long[] { 1, 2, 3 }).unsqueeze(0), torch.arange(3).unsqueeze(0));
                Assert.Equal(new long[] { 1, 3, config.VocabSize }, logits.shape);
            }
        }
        finally
        {
            await system.DisposeAsync();
            foreach (var r in roots) try { Directory.Delete(r, true); } catch (IOException) { }
        }
    }

    private sealed record NamespaceHost(string Name, string Root, Process Process);

    /// <summary>A remote host inside <paramref name="ns"/>: its own key, state and working folder (outside the API's data directory).</summary>
    private static async Task<NamespaceHost> StartHostAsync(SystemUnderTest system, HttpClient api, NetworkNamespace ns, string label, List<string> roots)
    {
        var key = (await (await api.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("hosts", KeyRoles.Host, $"namespace host {label}"), WireJson.Options))
            .Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
        var root = Directory.CreateTempSubdirectory($"longseq-nshost-{label}-").FullName;
        roots.Add(root);
        var keyFile = Path.Combine(root, "host.key");
        await File.WriteAllTextAsync(keyFile, key);
        var name = $"ns-{label}-{Guid.NewGuid():N}"[..16];
        // The API's data directory is an empty, read-only folder in the host's mount namespace: it cannot read or write it.
        var argv = ns.Command([system.DataDir], "dotnet", Path.Combine(SystemUnderTest.Bin("Trainer"), "trainer.dll"), "host", "--api", $"http://{ns.RootAddress}:{system.Port}",
            "--token-file", keyFile, "--slots", "2", "--name", name, "--state-dir", Path.Combine(root, "state"), "--artifacts", "remote");
        return new NamespaceHost(name, root, system.StartHostProcess($"host-{label}", argv, [], root, sharedDataDir: false));
    }

    private static async Task WaitFor(Func<Task<bool>> condition, TimeSpan timeout, SystemUnderTest system)
    {
        for (var deadline = DateTime.UtcNow + timeout; !await condition(); await Task.Delay(300))
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"condition not met within {timeout}\n{system.Logs()}");
    }
}
