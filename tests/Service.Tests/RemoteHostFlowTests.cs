using System.Net.Http.Json;
using System.Security.Cryptography;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>The host flow with a host that has its own disk (artifacts: remote): its state folder lies outside the
/// API's data directory, and it runs fake-trainer.sh on local paths.</summary>
public sealed class RemoteHostFlowFixture : HostFlowFixture
{
    private readonly string _state = Directory.CreateTempSubdirectory("remote-host-state-").FullName;
    public override string StateDir => _state;
    protected override string Artifacts => ArtifactAccess.Remote;
}

public sealed class RemoteHostFlowTests(RemoteHostFlowFixture factory) : IClassFixture<RemoteHostFlowFixture>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _dataset = null!;

    public async Task InitializeAsync()
    {
        await factory.StartHostAsync();
        (_client, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public Task DisposeAsync() => factory.StopHostAsync();

    [Fact]
    public async Task RemoteHost_Run_DownloadsItsDatasetUploadsCheckpointsAndModelThenSucceeds()
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = 2, max_steps = 6, seed = 5 });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;

        JobDto done = null!;
        for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline; await Task.Delay(100))
            if (JobStates.IsTerminal((done = (await _client.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!).State)) break;

        Assert.Equal(JobStates.Succeeded, done.State);
        var output = FinishedJobs.Output(factory, job);
        var local = Path.Combine(factory.StateDir, "runs", job.ToString(), "output");
        // What the trainer wrote on the host's disk is on the API's store, byte for byte; the trainer never wrote there itself.
        var files = Directory.GetFiles(local, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(local, f)).Order().ToList();
        Assert.Equal(files, Directory.GetFiles(output, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(output, f)).Order());
        Assert.Contains(Path.Combine("checkpoint-6", "trainer_state.json"), files);
        foreach (var f in files) Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(local, f)), await File.ReadAllBytesAsync(Path.Combine(output, f)));
        Assert.Equal($"weights of {job}", await File.ReadAllTextAsync(Path.Combine(output, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(output, "..", "env.txt")), "the trainer ran in the host's own folder, not the API's");
        // The dataset came by content hash into the host's cache.
        var sha = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(Data.File("identity.json"))));
        Assert.True(File.Exists(Path.Combine(factory.StateDir, "cache", "sha256", sha)));
        Assert.Equal(Enumerable.Range(1, 6), (await _client.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics"))!.Select(m => m.Step));
    }
}
