using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using LongSeqService.Scheduler.Liveness;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;
using LongSeqService.Trainer.Host;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace LongSeqService.Service.Tests;

/// <summary>Hosts with their own disks (artifacts: remote): the start answer names the run's inputs by content hash,
/// only the host and attempt a job is bound to may download them, and outputs are uploaded resumably, checked by
/// SHA-256, confined to the job's output folder and fenced by the attempt.</summary>
public sealed class RunArtifactEndpointTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _tenant = null!;
    private DatasetDto _dataset = null!;
    private string _mine = null!, _theirs = null!;
    private int _myId, _theirId;

    public async Task InitializeAsync()
    {
        (_tenant, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_tenant, Data.File("identity.json"));
        _mine = $"remote-{Guid.NewGuid():N}";
        _theirs = $"other-{Guid.NewGuid():N}";
        _myId = (await factory.RegisterHostAsync(_mine, 2, artifacts: ArtifactAccess.Remote)).HostId;
        _theirId = (await factory.RegisterHostAsync(_theirs, 2, artifacts: ArtifactAccess.Remote)).HostId;
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<HttpClient> HostClient(string name) => factory.Client(await factory.HostKeyFor(name));

    /// <summary>A job placed on my host alone and started there as <paramref name="attempt"/>; the start answer.</summary>
    private async Task<StartRunResponse> StartOnMineAsync(Guid? job = null, int attempt = 1, string model = "builtin:tiny-llama")
    {
        await using (var scope = factory.Scope())
        {
            var db = factory.Db(scope);
            await db.Jobs.Where(j => !JobStates.Terminal.Contains(j.State) && j.Id != job).ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Cancelled));
            await db.HostSlots.Where(x => x.JobId != job).ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null));
            await db.Hosts.Where(h => h.Id != _myId).ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost));
        }
        if (job == null)
        {
            var response = await _tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = model, dataset = _dataset.Id, max_steps = 10 });
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
        }
        await using (var scope = factory.Scope())
        {
            Assert.Equal(_myId, Assert.Single(await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync()).HostId);
            await factory.Db(scope).Hosts.ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Online));
        }
        var started = await (await HostClient(_mine)).PostAsJsonAsync($"/v1/hosts/{_myId}/runs/{job}/start", new StartRunRequest(attempt), WireJson.Options);
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        return (await started.Content.ReadFromJsonAsync<StartRunResponse>(WireJson.Options))!;
    }

    private async Task RequeueAsync()
    {
        await using var scope = factory.Scope();
        await scope.ServiceProvider.GetRequiredService<LivenessCheck>().RequeueRunsOfLostHostsAsync(host: _myId, why: "test");
    }

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private string Url(StartRunResponse run, string path, byte[] file, int? attempt = null) =>
        $"/v1/hosts/{_myId}/runs/{run.JobId}/outputs/{path}?attempt={attempt ?? run.Attempt}&sha256={Sha(file)}&size={file.Length}";

    private static ByteArrayContent Body(ReadOnlySpan<byte> bytes)
    {
        var content = new ByteArrayContent(bytes.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    private static async Task<JsonNode> Problem(HttpResponseMessage response) => JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

    [Fact]
    public async Task Start_RemoteHost_NamesInputsByHashAndNoServerPath()
    {
        var run = await StartOnMineAsync();
        var file = await File.ReadAllBytesAsync(Data.File("identity.json"));

        var dataset = Assert.Single(run.Inputs!.Datasets);
        Assert.Equal((Sha(file), (long)file.Length), (dataset.Sha256, dataset.SizeBytes));
        Assert.Null(run.Inputs.Model);                    // builtin:tiny-llama needs no files
        Assert.Null(run.Inputs.Resume);
        var json = System.Text.Json.JsonSerializer.Serialize(run, WireJson.Options);
        Assert.DoesNotContain(factory.DataDir, json);
        Assert.Equal($"jobs/{run.JobId}/output", run.OutputDir);
    }

    [Fact]
    public async Task DownloadInput_CurrentRun_ServesTheBytesAndRanges()
    {
        var run = await StartOnMineAsync();
        var host = await HostClient(_mine);
        var file = await File.ReadAllBytesAsync(Data.File("identity.json"));
        var url = $"/v1/hosts/{_myId}/runs/{run.JobId}/inputs/{run.Inputs!.Datasets[0].Sha256}?attempt=1";

        Assert.Equal(file, await host.GetByteArrayAsync(url));
        using var ranged = new HttpRequestMessage(HttpMethod.Get, url);
        ranged.Headers.Range = new RangeHeaderValue(100, null);
        var rest = await host.SendAsync(ranged);
        Assert.Equal(HttpStatusCode.PartialContent, rest.StatusCode);
        Assert.Equal(file[100..], await rest.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task DownloadInput_AnotherTenantsDatasetOrAnotherHostOrAStaleAttempt_IsRefused()
    {
        var run = await StartOnMineAsync();
        var (other, _) = await factory.TenantAsync();
        var secret = await ServiceFactory.UploadAsync(other, Data.File("alpaca_en_demo.json"));
        var mine = await HostClient(_mine);
        var runs = $"/v1/hosts/{_myId}/runs/{run.JobId}/inputs";

        // Another tenant's dataset is not an input of this run: its hash reads nothing, even from the run's own host.
        Assert.Equal(HttpStatusCode.NotFound, (await mine.GetAsync($"{runs}/{secret.Sha256}?attempt=1")).StatusCode);
        // Another host's key may not read this host's run.
        Assert.Equal(HttpStatusCode.Forbidden, (await (await HostClient(_theirs)).GetAsync($"{runs}/{run.Inputs!.Datasets[0].Sha256}?attempt=1")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await (await HostClient(_theirs)).GetAsync($"/v1/hosts/{_theirId}/runs/{run.JobId}/inputs/{run.Inputs.Datasets[0].Sha256}?attempt=1")).StatusCode);
        // Once requeued, attempt 1 reads nothing.
        await RequeueAsync();
        Assert.Equal(HttpStatusCode.Conflict, (await mine.GetAsync($"{runs}/{run.Inputs.Datasets[0].Sha256}?attempt=1")).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await mine.GetAsync($"{runs}/not-a-hash?attempt=1")).StatusCode);
    }

    [Fact]
    public async Task Upload_InChunks_ResumesFromTheOffsetTheApiHolds()
    {
        var run = await StartOnMineAsync();
        var host = await HostClient(_mine);
        var file = RandomNumberGenerator.GetBytes(300_000);
        var url = Url(run, "checkpoint-2/model.safetensors", file);

        var first = (await (await host.PutAsync(url + "&offset=0", Body(file.AsSpan(0, 100_000)))).Content.ReadFromJsonAsync<UploadStatusDto>(WireJson.Options))!;
        Assert.Equal((100_000L, false), (first.Received, first.Complete));
        // A host that restarted asks how much arrived, and continues from there.
        var status = (await host.GetFromJsonAsync<UploadStatusDto>(url, WireJson.Options))!;
        Assert.Equal(100_000, status.Received);
        var gap = await host.PutAsync(url + "&offset=200000", Body(file.AsSpan(200_000)));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, gap.StatusCode);
        Assert.NotNull((await Problem(gap))["errors"]!["offset"]);
        var output = Path.Combine(FinishedJobs.Output(factory, run.JobId), "checkpoint-2", "model.safetensors");
        Assert.False(File.Exists(output));                // never half a file in the output folder
        var last = (await (await host.PutAsync(url + "&offset=100000", Body(file.AsSpan(100_000)))).Content.ReadFromJsonAsync<UploadStatusDto>(WireJson.Options))!;

        Assert.True(last.Complete);
        Assert.Equal(file, await File.ReadAllBytesAsync(output));
        Assert.True((await host.GetFromJsonAsync<UploadStatusDto>(url, WireJson.Options))!.Complete);
    }

    [Fact]
    public async Task Upload_WrongHash_IsRefusedAndNothingLands()
    {
        var run = await StartOnMineAsync();
        var file = RandomNumberGenerator.GetBytes(5000);
        var lie = RandomNumberGenerator.GetBytes(5000);
        var url = $"/v1/hosts/{_myId}/runs/{run.JobId}/outputs/model.safetensors?attempt=1&sha256={Sha(lie)}&size=5000&offset=0";

        var response = await (await HostClient(_mine)).PutAsync(url, Body(file));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.NotNull((await Problem(response))["errors"]!["sha256"]);
        Assert.False(File.Exists(Path.Combine(FinishedJobs.Output(factory, run.JobId), "model.safetensors")));
        var uploads = Path.Combine(FinishedJobs.Output(factory, run.JobId), "..", "uploads");
        Assert.Empty(Directory.Exists(uploads) ? Directory.GetFiles(uploads) : []);
    }

    [Fact]
    public async Task Upload_StaleAttempt_Is409AndNothingItSentLands()
    {
        var run = await StartOnMineAsync();
        var host = await HostClient(_mine);
        var file = RandomNumberGenerator.GetBytes(10_000);
        var url = Url(run, "checkpoint-4/trainer_state.json", file);
        Assert.Equal(HttpStatusCode.OK, (await host.PutAsync(url + "&offset=0", Body(file.AsSpan(0, 4000)))).StatusCode);

        await RequeueAsync();
        var rest = await host.PutAsync(url + "&offset=4000", Body(file.AsSpan(4000)));

        Assert.Equal(HttpStatusCode.Conflict, rest.StatusCode);
        Assert.Contains("stop", await rest.Content.ReadAsStringAsync());
        Assert.False(Directory.Exists(Path.Combine(FinishedJobs.Output(factory, run.JobId), "checkpoint-4")));
    }

    [Theory]
    [InlineData("..%2F..%2Fescape.txt")]
    [InlineData("checkpoint-1%2F..%2F..%2F..%2Fescape.txt")]
    [InlineData("%2Fetc%2Fescape.txt")]
    [InlineData("a%5Cb.txt")]
    [InlineData("checkpoint-1%2F%2Fx")]
    public async Task Upload_PathLeavingTheOutputFolder_IsRefusedNamingThePath(string path)
    {
        var run = await StartOnMineAsync();
        var file = "x"u8.ToArray();
        var response = await (await HostClient(_mine)).PutAsync($"/v1/hosts/{_myId}/runs/{run.JobId}/outputs/{path}?attempt=1&sha256={Sha(file)}&size=1&offset=0", Body(file));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.NotNull((await Problem(response))["errors"]!["path"]);
        Assert.Empty(Directory.GetFiles(Path.Combine(FinishedJobs.Output(factory, run.JobId), "..", ".."), "escape.txt", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Upload_ChunkOverTheLimit_Is413AndTheSizeIsBounded()
    {
        var run = await StartOnMineAsync();
        var host = await HostClient(_mine);
        var big = new byte[Api.Hosts.OutputUploads.MaxChunkBytes + 1];
        var tooBig = await host.PutAsync($"/v1/hosts/{_myId}/runs/{run.JobId}/outputs/big.bin?attempt=1&sha256={Sha(big)}&size={big.Length}&offset=0", Body(big));
        var huge = await host.PutAsync($"/v1/hosts/{_myId}/runs/{run.JobId}/outputs/big.bin?attempt=1&sha256={Sha(big)}&size={long.MaxValue}&offset=0", Body([]));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, huge.StatusCode);
        Assert.NotNull((await Problem(huge))["errors"]!["size"]);
        Assert.False(File.Exists(Path.Combine(FinishedJobs.Output(factory, run.JobId), "big.bin")));
    }

    /// <summary>The host side against the real API: the uploader sends a local output folder (a complete checkpoint, one cut
    /// short, the final files); the run requeued and started again lists the complete one to resume from, and the
    /// cache downloads it, checks it and lays it out as a complete local checkpoint.</summary>
    [Fact]
    public async Task Requeued_StartNamesTheNewestCompleteUploadedCheckpoint_AndTheHostLaysItOut()
    {
        var run = await StartOnMineAsync();
        var local = Directory.CreateTempSubdirectory("remote-out-").FullName;
        ModelDirs.Write(Path.Combine(local, "checkpoint-2"));
        File.WriteAllText(Path.Combine(local, "checkpoint-2", "trainer_state.json"), """{"global_step":2}""");
        ModelDirs.Write(Path.Combine(local, "checkpoint-4"));     // no trainer_state.json yet: not complete, not uploaded
        using var api = new HostApiClient(factory.Server.BaseAddress, await factory.HostKeyFor(_mine), factory.Server.CreateHandler());
        var uploader = new OutputUploader(api, _myId, run.JobId, run.Attempt, local, TextWriter.Null);
        await uploader.CheckpointsAsync(CancellationToken.None);
        Assert.Equal(["checkpoint-2"], uploader.Uploaded);

        await RequeueAsync();
        var again = await StartOnMineAsync(run.JobId, attempt: 2);
        Assert.Equal("checkpoint-2", again.Inputs!.Resume!.Name);
        var state = Directory.CreateTempSubdirectory("remote-state-").FullName;
        var laid = await RemoteRunFiles.PrepareAsync(state, new ArtifactCache(state),
            (sha, file, ct) => api.DownloadInputAsync(_myId, again.JobId, again.Attempt, sha, file, ct), again, CancellationToken.None);

        Assert.Equal(Path.Combine(laid.OutputDir, "checkpoint-2"), RunConfig.NewestCheckpoint(laid.OutputDir));
        foreach (var f in Directory.GetFiles(Path.Combine(local, "checkpoint-2")))
            Assert.Equal(await File.ReadAllBytesAsync(f), await File.ReadAllBytesAsync(Path.Combine(laid.OutputDir, "checkpoint-2", Path.GetFileName(f))));
        Assert.Equal(await File.ReadAllBytesAsync(Data.File("identity.json")), await File.ReadAllBytesAsync(laid.DatasetPath));
        Assert.True(File.Exists(Path.Combine(state, "cache", "sha256", again.Inputs.Datasets[0].Sha256)));
        Assert.Empty(Directory.GetFiles(Path.Combine(state, "cache", "partial")));
    }

    /// <summary>A tenant's earlier job as the model: its output folder's files, not its checkpoints, are the model's inputs; the
    /// host lays them out as a local model folder and the spec names that folder.</summary>
    [Fact]
    public async Task Start_JobOutputAsModel_ListsItsFilesButNotItsCheckpoints_AndTheHostLaysThemOut()
    {
        var earlier = await FinishedJobs.SucceededAsync(factory, _tenant, _dataset, 3);
        var run = await StartOnMineAsync(model: $"job:{earlier.Id}");
        var model = run.Inputs!.Model!;

        Assert.Equal(["config.json", "model.safetensors", "tokenizer.json"], model.Select(f => f.Path).Order());
        Assert.Equal($"job:{earlier.Id}", run.Spec.ModelNameOrPath);       // the tenant's name, no server path
        var state = Directory.CreateTempSubdirectory("remote-state-").FullName;
        using var api = new HostApiClient(factory.Server.BaseAddress, await factory.HostKeyFor(_mine), factory.Server.CreateHandler());
        var laid = await RemoteRunFiles.PrepareAsync(state, new ArtifactCache(state),
            (sha, file, ct) => api.DownloadInputAsync(_myId, run.JobId, run.Attempt, sha, file, ct), run, CancellationToken.None);
        foreach (var f in model)
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(FinishedJobs.Output(factory, earlier.Id), f.Path)), await File.ReadAllBytesAsync(Path.Combine(laid.Spec.ModelNameOrPath!, f.Path)));
        Assert.StartsWith(state, laid.Spec.ModelNameOrPath);
    }

    /// <summary>A download cut short continues with a Range request; bytes that do not hash to the listed SHA-256 never enter the cache.</summary>
    [Fact]
    public async Task ArtifactCache_PartialDownload_ContinuesAndWrongBytesNeverEnterTheCache()
    {
        var run = await StartOnMineAsync();
        var input = run.Inputs!.Datasets[0];
        var bytes = await File.ReadAllBytesAsync(Data.File("identity.json"));
        var state = Directory.CreateTempSubdirectory("remote-cache-").FullName;
        Directory.CreateDirectory(Path.Combine(state, "cache", "partial"));
        await File.WriteAllBytesAsync(Path.Combine(state, "cache", "partial", input.Sha256), bytes[..1000]);
        using var api = new HostApiClient(factory.Server.BaseAddress, await factory.HostKeyFor(_mine), factory.Server.CreateHandler());
        long askedFrom = -1;
        var cache = new ArtifactCache(state);

        var cached = await cache.GetAsync(input, (sha, file, ct) => { askedFrom = file.Length; return api.DownloadInputAsync(_myId, run.JobId, run.Attempt, sha, file, ct); }, CancellationToken.None);

        Assert.Equal(1000, askedFrom);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(cached));
        // A listing that lies about the hash: the downloaded bytes are discarded, nothing is cached under that name.
        var lie = input with { Sha256 = new string('a', 64) };
        await Assert.ThrowsAsync<InvalidDataException>(() => cache.GetAsync(lie, async (sha, file, ct) => { await file.WriteAsync(bytes, ct); return true; }, CancellationToken.None));
        Assert.False(File.Exists(Path.Combine(cache.Dir, lie.Sha256)));
        Assert.Empty(Directory.GetFiles(Path.Combine(state, "cache", "partial")));
    }

    [Fact]
    public async Task Register_UnknownArtifacts_Is422NamingTheField()
    {
        var response = await (await HostClient(_mine)).PostAsJsonAsync("/v1/hosts/register", new RegisterHostRequest(_mine, [new SlotSpec("cpu", null)], "nfs"), WireJson.Options);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.NotNull((await Problem(response))["errors"]!["artifacts"]);
    }
}
