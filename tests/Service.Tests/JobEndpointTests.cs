using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>Submission, reading and cancelling over HTTP. One host with 4 slots is registered so jobs
/// of up to 4 ranks are accepted; placement does not run here (no scheduler server).</summary>
public sealed class JobEndpointTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _sft = null!, _dpo = null!;

    public async Task InitializeAsync()
    {
        await factory.RegisterHostAsync("jobs-host", 4);
        (_client, _) = await factory.TenantAsync();
        _sft = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
        _dpo = await ServiceFactory.UploadAsync(_client, Data.File("dpo_en_demo.json"));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private object Spec(int sp = 2, string? key = null, string stage = "sft", string? dataset = null) => new Dictionary<string, object?>
    {
        ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = stage, ["dataset"] = dataset ?? (stage == "dpo" ? _dpo.Id : _sft.Id),
        ["sequence_parallel_size"] = sp, ["max_steps"] = 5, ["idempotency_key"] = key,
    }.Where(kv => kv.Value != null).ToDictionary();

    private async Task<JobDto> SubmitAsync(object spec, HttpClient? client = null)
    {
        var response = await (client ?? _client).PostAsJsonAsync("/v1/jobs", spec);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
    }

    private static async Task<JsonElement> ErrorsAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").Clone();
    }

    [Fact]
    public async Task Submit_ValidSpec_Is201QueuedWithEvents()
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", Spec());
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        Assert.Equal((JobStates.Queued, 2, 2), (job.State, job.SequenceParallelSize, job.WorldSize));
        Assert.Equal($"/v1/jobs/{job.Id}", response.Headers.Location?.ToString());
        var events = await _client.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events");
        Assert.Equal([JobStates.Validating, JobStates.Queued], events!.Select(e => e.ToState));
        Assert.Equal(5, job.Spec.MaxSteps);
    }

    [Fact]
    public async Task Submit_UnknownKey_Is422WithSuggestion()
    {
        var errors = await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _sft.Id, sequence_paralel_size = 2 }));
        Assert.Contains("did you mean 'sequence_parallel_size'", errors.GetProperty("sequence_paralel_size")[0].GetString());
    }

    [Fact]
    public async Task Submit_UlyssesWithIndivisibleHeads_Is422SayingWhatWouldWork()
    {
        var errors = await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _sft.Id, sequence_parallel_size = 3, sequence_parallel_mode = "ulysses" }));
        Assert.Contains("hybrid", errors.GetProperty("sequence_parallel_mode")[0].GetString());
    }

    [Fact]
    public async Task Submit_MoreRanksThanAnyHost_Is422()
    {
        var errors = await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", Spec(sp: 8)));
        Assert.Contains("largest registered host has 4", errors.GetProperty("sequence_parallel_size")[0].GetString());
    }

    [Fact]
    public async Task Submit_WrongDatasetKindOrOwner_Is422OnDataset()
    {
        var (other, _) = await factory.TenantAsync();
        Assert.Contains("preference", (await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", Spec(stage: "dpo", dataset: _sft.Id)))).GetProperty("dataset")[0].GetString());
        Assert.Contains("stage dpo", (await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", Spec(stage: "sft", dataset: _dpo.Id)))).GetProperty("dataset")[0].GetString());
        Assert.Contains("no dataset", (await ErrorsAsync(await other.PostAsJsonAsync("/v1/jobs", Spec()))).GetProperty("dataset")[0].GetString());
    }

    /// <summary>LLaMA-Factory's dataset: a,b as several dataset ids (concatenated by the trainer); pt trains on text and alpaca alike.</summary>
    [Fact]
    public async Task Submit_SeveralDatasetIds_PtOnTextAndEvalDataset_Accepted()
    {
        var c4 = await ServiceFactory.UploadAsync(_client, Data.File("c4_demo.jsonl"));
        Assert.Equal(DatasetFormats.Text, c4.Format);

        var job = await SubmitAsync(new Dictionary<string, object?>
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = "pt", ["dataset"] = $"{c4.Id}, {_sft.Id}", ["eval_dataset"] = c4.Id, ["max_steps"] = 5,
        });

        Assert.Equal($"{c4.Id},{_sft.Id}", job.DatasetId);
        Assert.Equal("pt", job.Stage);
    }

    [Fact]
    public async Task Submit_DatasetListWithWrongMember_Is422NamingEachField()
    {
        var c4 = await ServiceFactory.UploadAsync(_client, Data.File("c4_demo.jsonl"));
        var errors = await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", new Dictionary<string, object?>
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["dataset"] = $"{_sft.Id},{c4.Id},ds-nope", ["eval_dataset"] = _dpo.Id, ["dataset_dir"] = "/srv/data",
        }));

        var dataset = errors.GetProperty("dataset").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Contains(dataset, m => m.Contains($"{c4.Id} (c4_demo.jsonl) is pre-training text; use stage pt"));
        Assert.Contains(dataset, m => m.Contains("no dataset 'ds-nope'"));
        Assert.Contains("is preference data", errors.GetProperty("eval_dataset")[0].GetString());
        Assert.Contains("dataset ids", errors.GetProperty("dataset_dir")[0].GetString());
    }

    [Fact]
    public async Task Submit_ServiceOwnedKeysAndMissingModel_Are422()
    {
        var errors = await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", new { dataset = _sft.Id, output_dir = "/tmp/x" }));
        Assert.True(errors.TryGetProperty("output_dir", out _));
        errors = await ErrorsAsync(await _client.PostAsJsonAsync("/v1/jobs", new { dataset = _sft.Id }));
        Assert.True(errors.TryGetProperty("model_name_or_path", out _));
    }

    [Fact]
    public async Task Submit_DpoOnPreferenceData_IsAccepted()
    {
        Assert.Equal("dpo", (await SubmitAsync(Spec(stage: "dpo"))).Stage);
    }

    [Fact]
    public async Task Submit_SameIdempotencyKeyTwice_ReturnsTheSameJob()
    {
        var first = await _client.PostAsJsonAsync("/v1/jobs", Spec(key: "retry-1"));
        var second = await _client.PostAsJsonAsync("/v1/jobs", Spec(key: "retry-1"));
        Assert.Equal((HttpStatusCode.Created, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));
        Assert.Equal((await first.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id, (await second.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id);
    }

    [Fact]
    public async Task Submit_SameIdempotencyKeyConcurrently_CreatesOneJob()
    {
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _client.PostAsJsonAsync("/v1/jobs", Spec(key: "burst"))));
        Assert.All(responses, r => Assert.True(r.IsSuccessStatusCode));
        var ids = await Task.WhenAll(responses.Select(async r => (await r.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id));
        Assert.Single(ids.Distinct());
        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Created);
    }

    [Fact]
    public async Task Submit_SameKeyDifferentSpec_Is409()
    {
        await SubmitAsync(Spec(sp: 1, key: "k-diff"));
        Assert.Equal(HttpStatusCode.Conflict, (await _client.PostAsJsonAsync("/v1/jobs", Spec(sp: 2, key: "k-diff"))).StatusCode);
    }

    [Fact]
    public async Task Job_OfAnotherTenant_Is404Everywhere()
    {
        var job = await SubmitAsync(Spec());
        var (other, _) = await factory.TenantAsync();
        foreach (var path in new[] { "", "/events", "/metrics", "/checkpoints", "/artifacts", "/artifacts/model.safetensors" })
            Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/jobs/{job.Id}{path}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsync($"/v1/jobs/{job.Id}/cancel", null)).StatusCode);
        Assert.Equal(JobStates.Queued, (await _client.GetFromJsonAsync<JobDto>($"/v1/jobs/{job.Id}", WireJson.Options))!.State);
        Assert.DoesNotContain((await other.GetFromJsonAsync<Page<JobDto>>("/v1/jobs", WireJson.Options))!.Data, j => j.Id == job.Id);
    }

    [Fact]
    public async Task List_FiltersByStateAndPagesByCursor()
    {
        var (client, _) = await factory.TenantAsync();
        var dataset = await ServiceFactory.UploadAsync(client, Data.File("identity.json"));
        var jobs = new List<JobDto>();
        for (int i = 0; i < 5; i++) jobs.Add(await SubmitAsync(Spec(dataset: dataset.Id), client));
        await client.PostAsync($"/v1/jobs/{jobs[0].Id}/cancel", null);
        var page = (await client.GetFromJsonAsync<Page<JobDto>>("/v1/jobs?limit=2", WireJson.Options))!;
        Assert.Equal((2, true, jobs[3].Id.ToString()), (page.Data.Count, page.HasMore, page.NextAfter));
        Assert.Equal(jobs[4].Id, page.Data[0].Id); // newest first
        var second = (await client.GetFromJsonAsync<Page<JobDto>>($"/v1/jobs?limit=2&after={page.NextAfter}", WireJson.Options))!;
        Assert.Equal([jobs[2].Id, jobs[1].Id], second.Data.Select(j => j.Id));
        var last = (await client.GetFromJsonAsync<Page<JobDto>>($"/v1/jobs?limit=2&after={second.NextAfter}", WireJson.Options))!;
        Assert.Equal((jobs[0].Id, false, (string?)null), (Assert.Single(last.Data).Id, last.HasMore, last.NextAfter));
        Assert.Equal(jobs.Select(j => j.Id).Reverse(), (await client.ListAsync<JobDto>("/v1/jobs?limit=1")).Select(j => j.Id));
        Assert.Equal(4, (await client.ListAsync<JobDto>("/v1/jobs?state=queued")).Count);
        var cancelled = (await client.GetFromJsonAsync<Page<JobDto>>("/v1/jobs?state=cancelled", WireJson.Options))!;
        Assert.Equal(jobs[0].Id, Assert.Single(cancelled.Data).Id);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/v1/jobs?state=sleeping")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/v1/jobs?limit=0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync($"/v1/jobs?after={Guid.NewGuid()}")).StatusCode);
    }

    [Fact]
    public async Task Cancel_QueuedJob_IsCancelledAndSecondCancelIs409()
    {
        var job = await SubmitAsync(Spec());
        var first = await _client.PostAsync($"/v1/jobs/{job.Id}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(JobStates.Cancelled, (await first.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.State);
        Assert.Equal(HttpStatusCode.Conflict, (await _client.PostAsync($"/v1/jobs/{job.Id}/cancel", null)).StatusCode);
    }

    [Fact]
    public async Task Cancel_Concurrently_ExactlyOneWins()
    {
        for (int round = 0; round < 5; round++)
        {
            var job = await SubmitAsync(Spec());
            var responses = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => _client.PostAsync($"/v1/jobs/{job.Id}/cancel", null)));
            Assert.Single(responses, r => r.StatusCode == HttpStatusCode.OK);
            Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.Conflict));
            var events = await _client.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events");
            Assert.Single(events!, e => e.ToState == JobStates.Cancelled);
        }
    }

    [Fact]
    public async Task Artifacts_PathOutsideTheOutputDir_Is404()
    {
        var job = await SubmitAsync(Spec());
        var output = Path.Combine(factory.DataDir, "jobs", job.Id.ToString(), "output");
        Directory.CreateDirectory(Path.Combine(output, "checkpoint-2"));
        await File.WriteAllTextAsync(Path.Combine(output, "config.json"), "{}");
        File.WriteAllText(Path.Combine(factory.DataDir, "secret.txt"), "no");
        Assert.Equal("{}", await _client.GetStringAsync($"/v1/jobs/{job.Id}/artifacts/config.json"));
        Assert.Equal(HttpStatusCode.NotFound, (await _client.GetAsync($"/v1/jobs/{job.Id}/artifacts/..%2F..%2F..%2Fsecret.txt")).StatusCode);
        var checkpoints = await _client.ListAsync<CheckpointDto>($"/v1/jobs/{job.Id}/checkpoints");
        Assert.Equal(2, Assert.Single(checkpoints!).Step);
    }
}
