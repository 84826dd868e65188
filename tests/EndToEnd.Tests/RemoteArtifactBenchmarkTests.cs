using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;
using Xunit.Abstractions;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>
/// Artifact throughput over a veth link: a client inside a network namespace (curl, as any host's HTTP client would)
/// uploads a LONGSEQ_BENCH_MB (default 200) MB output file to the API in 8 MiB chunks (PUT …/outputs/{path}), then, with
/// the run requeued and started again, downloads it back as the checkpoint to resume from (GET …/inputs/{sha256}).
/// Prints MB/s both ways; asserts the bytes arrived whole.
/// </summary>
[Trait("Category", "Slow")]
public sealed class RemoteArtifactBenchmarkTests(ITestOutputHelper output)
{
    private const int Chunk = 8 << 20;

    [NetworkNamespaceFact]
    public async Task ArtifactTransfer_OverVeth_ReportsUploadAndDownloadMegabytesPerSecond()
    {
        int mb = int.TryParse(Environment.GetEnvironmentVariable("LONGSEQ_BENCH_MB"), out var m) ? m : 200;
        using var ns = NetworkNamespace.Create(Random.Shared.Next(1, 250));
        var system = new SystemUnderTest { StartsHost = false };
        system.ApiEnvironment["Kestrel__Endpoints__Loop__Url"] = $"http://127.0.0.1:{system.Port}";
        system.ApiEnvironment["Kestrel__Endpoints__Ns__Url"] = $"http://{ns.RootAddress}:{system.Port}";
        await system.InitializeAsync();
        var work = Directory.CreateTempSubdirectory("longseq-bench-").FullName;
        try
        {
            using var admin = system.Client();
            var key = (await (await admin.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("hosts", KeyRoles.Host, "bench"), WireJson.Options))
                .Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
            using var host = system.Client(key);
            var name = $"bench-{Guid.NewGuid():N}"[..14];
            var hostId = (await (await host.PostAsJsonAsync("/v1/hosts/register", new RegisterHostRequest(name, [new SlotSpec("cpu", null)], ArtifactAccess.Remote), WireJson.Options))
                .Content.ReadFromJsonAsync<RegisterHostResponse>(WireJson.Options))!.HostId;
            var dataset = await SystemUnderTest.UploadDatasetIdAsync(admin, "identity.json");
            var job = (await (await admin.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset, max_steps = 2 }))
                .Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
            var run = await StartAsync(host, hostId, job);

            var file = Path.Combine(work, "model.safetensors");
            await using (var f = File.Create(file))
                for (int i = 0; i < mb; i++) await f.WriteAsync(RandomNumberGenerator.GetBytes(1 << 20));
            var sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
            long size = (long)mb << 20;
            var url = $"http://{ns.RootAddress}:{system.Port}/v1/hosts/{hostId}/runs/{job}";
            var upload = $"{url}/outputs/checkpoint-1/model.safetensors?attempt={run.Attempt}&sha256={sha}&size={size}";
            var script = $"""
                set -e
                for ((i=0; i<{(size + Chunk - 1) / Chunk}; i++)); do
                  dd if={file} bs={Chunk} skip=$i count=1 status=none | curl -sf -X PUT -H "Authorization: Bearer $LSQ_KEY" -H "Content-Type: application/octet-stream" --data-binary @- "{upload}&offset=$((i*{Chunk}))" > /dev/null
                done
                """;
            var up = Run(ns, key, "bash", "-c", script);
            var stored = Path.Combine(system.DataDir, "jobs", job.ToString(), "output", "checkpoint-1", "model.safetensors");
            Assert.Equal(size, new FileInfo(stored).Length);
            var state = "{\"global_step\": 1}"u8.ToArray();
            var stateUrl = $"/v1/hosts/{hostId}/runs/{job}/outputs/checkpoint-1/trainer_state.json?attempt={run.Attempt}&sha256={Convert.ToHexStringLower(SHA256.HashData(state))}&size={state.Length}&offset=0";
            Assert.True((await host.PutAsync(stateUrl, new ByteArrayContent(state))).IsSuccessStatusCode);

            // Requeued and started again: the checkpoint is the run's input now.
            (await host.PostAsJsonAsync($"/v1/hosts/{hostId}/runs/{job}/finish", new FinishRunRequest(run.Attempt, RunOutcomes.Interrupted, null, "benchmark"), WireJson.Options)).EnsureSuccessStatusCode();
            var again = await StartAsync(host, hostId, job);
            var input = again.Inputs!.Resume!.Files.Single(x => x.Path == "model.safetensors");
            Assert.Equal(sha, input.Sha256);
            var copy = Path.Combine(work, "downloaded");
            var down = Run(ns, key, "bash", "-c", $"curl -sf -H \"Authorization: Bearer $LSQ_KEY\" -o {copy} '{url}/inputs/{sha}?attempt={again.Attempt}'");
            Assert.Equal(sha, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(copy))));

            var load = File.ReadAllText("/proc/loadavg").Trim();
            output.WriteLine($"artifact upload over veth: {mb} MB in {up.TotalSeconds:F2} s = {mb / up.TotalSeconds:F1} MB/s (8 MiB PUTs, sha256 checked by the API)");
            output.WriteLine($"artifact download over veth: {mb} MB in {down.TotalSeconds:F2} s = {mb / down.TotalSeconds:F1} MB/s");
            output.WriteLine($"loadavg: {load}");
            Console.WriteLine($"BENCH upload {mb / up.TotalSeconds:F1} MB/s, download {mb / down.TotalSeconds:F1} MB/s ({mb} MB), loadavg {load}");
        }
        finally
        {
            await system.DisposeAsync();
            Directory.Delete(work, true);
        }
    }

    private static async Task<StartRunResponse> StartAsync(HttpClient host, int hostId, Guid job)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(60); ; await Task.Delay(300))
        {
            var beat = (await (await host.PostAsJsonAsync($"/v1/hosts/{hostId}/heartbeat", new HeartbeatRequest([]), WireJson.Options)).Content.ReadFromJsonAsync<HeartbeatResponse>(WireJson.Options))!;
            if (beat.Start.FirstOrDefault(r => r.JobId == job) is { } lease)
            {
                var started = await host.PostAsJsonAsync($"/v1/hosts/{hostId}/runs/{job}/start", new StartRunRequest(lease.Attempt), WireJson.Options);
                started.EnsureSuccessStatusCode();
                return (await started.Content.ReadFromJsonAsync<StartRunResponse>(WireJson.Options))!;
            }
            Assert.True(DateTime.UtcNow < deadline, "the job was never placed on the benchmark host");
        }
    }

    /// <summary>Runs a command inside the namespace (the key in its environment, not its command line); how long it took.</summary>
    private static TimeSpan Run(NetworkNamespace ns, string key, params string[] command)
    {
        var argv = ns.Command(command);
        var psi = new ProcessStartInfo(argv[0]) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in argv[1..]) psi.ArgumentList.Add(a);
        psi.Environment["LSQ_KEY"] = key;
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{string.Join(' ', command)[..Math.Min(80, string.Join(' ', command).Length)]}… exited {p.ExitCode}: {error}");
        return clock.Elapsed;
    }
}
