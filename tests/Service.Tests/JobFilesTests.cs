using System.Net;
using System.Net.Http.Json;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>Downloads and listings of a job's output directory with real symbolic links planted in it:
/// to /etc/passwd, to the service's secrets (a host key, the database password file) and to whole
/// directories. None is listed, served or walked into.</summary>
public sealed class JobFilesTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _dataset = null!;

    public async Task InitializeAsync()
    {
        await factory.RegisterHostAsync("files-host", 1);
        (_client, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Artifacts_SymlinksInTheOutputDir_AreNeitherListedNorServed()
    {
        var job = await FinishedJobs.SucceededAsync(factory, _client, _dataset, checkpoints: 1);
        var output = FinishedJobs.Output(factory, job.Id);
        var secrets = Directory.CreateDirectory(Path.Combine(factory.DataDir, "pg")).FullName;
        File.WriteAllText(Path.Combine(secrets, "pwfile"), "db-password");
        File.WriteAllText(Path.Combine(factory.DataDir, "host.key"), "lsk_host_secret");
        var elsewhere = ModelDirs.Write(Path.Combine(factory.DataDir, "elsewhere"));
        File.CreateSymbolicLink(Path.Combine(output, "passwd"), "/etc/passwd");
        File.CreateSymbolicLink(Path.Combine(output, "checkpoint-1", "host.key"), Path.Combine(factory.DataDir, "host.key"));
        File.CreateSymbolicLink(Path.Combine(output, "relative.key"), "../../../host.key");
        Directory.CreateSymbolicLink(Path.Combine(output, "pg"), secrets);
        Directory.CreateSymbolicLink(Path.Combine(output, "checkpoint-9"), elsewhere);

        var listed = (await _client.ListAsync<ArtifactDto>($"/v1/jobs/{job.Id}/artifacts"))!.Select(a => a.Path).ToList();
        Assert.Equal(["checkpoint-1/config.json", "checkpoint-1/model.safetensors", "checkpoint-1/tokenizer.json", "config.json", "model.safetensors", "tokenizer.json"], listed);
        var checkpoints = (await _client.ListAsync<CheckpointDto>($"/v1/jobs/{job.Id}/checkpoints"))!;
        Assert.Equal([1], checkpoints.Select(c => c.Step));

        foreach (var path in new[] { "passwd", "checkpoint-1/host.key", "relative.key", "pg/pwfile", "checkpoint-9/config.json", "../../../host.key", "..%2F..%2F..%2Fhost.key" })
            Assert.Equal(HttpStatusCode.NotFound, (await _client.GetAsync($"/v1/jobs/{job.Id}/artifacts/{path}")).StatusCode);
        Assert.Equal(File.ReadAllBytes(Path.Combine(output, "config.json")), await _client.GetByteArrayAsync($"/v1/jobs/{job.Id}/artifacts/config.json"));
        Assert.Equal(HttpStatusCode.OK, (await _client.GetAsync($"/v1/jobs/{job.Id}/artifacts/checkpoint-1/model.safetensors")).StatusCode);
    }

    [Fact]
    public async Task ModelFromJob_SymlinkedCheckpoint_IsRefused()
    {
        var job = await FinishedJobs.SucceededAsync(factory, _client, _dataset);
        var elsewhere = ModelDirs.Write(Path.Combine(factory.DataDir, $"other-{Guid.NewGuid():N}"));
        Directory.CreateSymbolicLink(Path.Combine(FinishedJobs.Output(factory, job.Id), "checkpoint-3"), elsewhere);
        var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = $"job:{job.Id}/checkpoint-3", dataset = _dataset.Id, max_steps = 1 });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.DoesNotContain(factory.DataDir, await response.Content.ReadAsStringAsync());
    }
}
