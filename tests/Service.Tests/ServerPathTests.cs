using System.Net;
using System.Net.Http.Json;
using System.Text;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Service.Tests;

/// <summary>Errors a tenant can provoke never show where the server keeps its files: each is provoked and its
/// whole answer searched for the data directory (and for a registered model's directory).</summary>
public sealed class ServerPathTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _dataset = null!;
    private int _hostId;

    public async Task InitializeAsync()
    {
        _hostId = (await factory.RegisterHostAsync("paths-host", 1)).HostId;
        (_client, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task FailedJob_TrainerErrorWithPaths_IsShownWithoutTheDataDir()
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, max_steps = 1 });
        var job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        await using (var scope = factory.Scope())
            await factory.Db(scope).Jobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s
                .SetProperty(j => j.State, JobStates.Running).SetProperty(j => j.HostId, _hostId).SetProperty(j => j.Attempt, 1));
        var output = FinishedJobs.Output(factory, job.Id);
        var error = $"output_dir: '{output}' is not empty; dataset: file '{factory.DataDir}/datasets/ab/ab.json' not found";
        var finish = await factory.Client(await factory.HostKeyFor("paths-host")).PostAsJsonAsync($"/v1/hosts/{_hostId}/runs/{job.Id}/finish", new FinishRunRequest(1, RunOutcomes.Failed, 2, error), WireJson.Options);
        Assert.Equal(HttpStatusCode.NoContent, finish.StatusCode);

        var shown = (await _client.GetFromJsonAsync<JobDto>($"/v1/jobs/{job.Id}", WireJson.Options))!;
        Assert.Equal($"output_dir: 'jobs/{job.Id}/output' is not empty; dataset: file 'datasets/ab/ab.json' not found", shown.Error);
        Assert.DoesNotContain(factory.DataDir, await _client.GetStringAsync($"/v1/jobs/{job.Id}/events"));
    }

    [Fact]
    public async Task BrokenModels_ErrorsNameTheModelNotItsDirectory()
    {
        var registered = ModelDirs.Write(Path.Combine(Path.GetTempPath(), $"longseq-model-{Guid.NewGuid():N}"));
        Assert.Equal(HttpStatusCode.Created, (await factory.Admin().PostAsJsonAsync("/v1/models", new { name = "breaks-later", path = registered })).StatusCode);
        File.WriteAllText(Path.Combine(registered, "config.json"), """{"model_type":"gpt2","num_attention_heads":4}""");
        var job = await FinishedJobs.SucceededAsync(factory, _client, _dataset);
        File.Delete(Path.Combine(FinishedJobs.Output(factory, job.Id), "config.json"));

        foreach (var model in new[] { "breaks-later", $"job:{job.Id}" })
        {
            var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = model, dataset = _dataset.Id, max_steps = 1 });
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Contains(model, body);
            Assert.DoesNotContain(factory.DataDir, body);
            Assert.DoesNotContain(registered, body);
            var stats = await _client.GetStringAsync($"/v1/datasets/{_dataset.Id}?model={Uri.EscapeDataString(model)}").ContinueWith(t => t.IsFaulted ? "" : t.Result);
            Assert.DoesNotContain(factory.DataDir, stats);
        }
        Directory.Delete(registered, true);
    }

    [Fact]
    public async Task DatasetErrors_NameNoServerPath()
    {
        var bad = await _client.PostAsync("/v1/datasets", Forms.Bytes(Encoding.UTF8.GetBytes("{\"instruction\": 1}\nnot json\n"), "bad.jsonl"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
        Assert.DoesNotContain(factory.DataDir, await bad.Content.ReadAsStringAsync());
        var wrongType = await _client.PostAsync("/v1/datasets", Forms.Bytes("x"u8.ToArray(), "data.csv"));
        Assert.DoesNotContain(factory.DataDir, await wrongType.Content.ReadAsStringAsync());
        var cutShort = new ByteArrayContent("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.json\"\r\n\r\n[{"u8.ToArray());
        cutShort.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=b");
        var truncated = await _client.PostAsync("/v1/datasets", cutShort);
        Assert.True((int)truncated.StatusCode is >= 400 and < 500, truncated.StatusCode.ToString());
        Assert.DoesNotContain(factory.DataDir, await truncated.Content.ReadAsStringAsync());
    }
}
