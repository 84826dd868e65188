using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LongSeqService.Api.Models;
using LongSeqService.Shared.Data;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Service.Tests;

public sealed class ModelRegistryTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _a = null!, _b = null!;
    private DatasetDto _dataA = null!, _dataB = null!;

    public async Task InitializeAsync()
    {
        await factory.RegisterHostAsync("models-host", 2);
        (_a, _) = await factory.TenantAsync();
        (_b, _) = await factory.TenantAsync();
        _dataA = await ServiceFactory.UploadAsync(_a, Data.File("identity.json"));
        _dataB = await ServiceFactory.UploadAsync(_b, Data.File("identity.json"));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private static object Spec(string model, DatasetDto dataset) => new { model_name_or_path = model, dataset = dataset.Id, max_steps = 1 };

    private string Output(Guid job) => FinishedJobs.Output(factory, job);

    private Task<JobDto> SucceededJobAsync(HttpClient client, DatasetDto dataset, params int[] checkpoints) => FinishedJobs.SucceededAsync(factory, client, dataset, checkpoints);

    private static async Task<string> ModelErrorAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var errors = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        return errors.GetProperty("model_name_or_path").GetRawText();
    }

    [Fact]
    public async Task Submit_AnotherTenantsJobOutputPath_Is422AndTheJobIsNotCreated()
    {
        var victim = await SucceededJobAsync(_a, _dataA);
        var response = await _b.PostAsJsonAsync("/v1/jobs", Spec(Output(victim.Id), _dataB));
        Assert.Contains(ModelRegistry.NotAvailable, await ModelErrorAsync(response));
        Assert.Contains(ModelRegistry.NotAvailable, await ModelErrorAsync(await _b.PostAsJsonAsync("/v1/jobs", Spec($"job:{victim.Id}", _dataB))));
        await using var scope = factory.Scope();
        var id = victim.Id.ToString();
        Assert.Equal(0, await factory.Db(scope).Jobs.CountAsync(j => j.Model.Contains(id) || (j.ModelPath != null && j.ModelPath.Contains(id))));
    }

    [Fact]
    public async Task Submit_ExistingAndMissingPathsAndForeignJobs_GetByteIdenticalAnswers()
    {
        var foreign = await SucceededJobAsync(_a, _dataA);
        var existing = factory.DataDir;                                        // a directory that exists, with no config.json
        var model = ModelDirs.Write(Path.Combine(Path.GetTempPath(), $"longseq-model-{Guid.NewGuid():N}"));  // a real model directory
        string[] probes = [existing, existing + "/no-such-dir", model, "relative/dir", "../../etc", $"job:{foreign.Id}", $"job:{Guid.NewGuid()}", $"job:{foreign.Id}/checkpoint-1"];
        var answers = new List<string>();
        foreach (var probe in probes)
        {
            var response = await _b.PostAsJsonAsync("/v1/jobs", Spec(probe, _dataB));
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            answers.Add($"{(int)response.StatusCode} {body.GetProperty("title")} {body.GetProperty("errors").GetRawText()}");
        }
        Assert.Single(answers.Distinct());
        Assert.DoesNotContain(factory.DataDir, answers[0]);
        Directory.Delete(model, true);
    }

    [Fact]
    public async Task Submit_AdminKeyWithAServerPath_Is422Too()
    {
        var model = ModelDirs.Write(Path.Combine(Path.GetTempPath(), $"longseq-model-{Guid.NewGuid():N}"));
        var admin = factory.Admin();
        var dataset = await ServiceFactory.UploadAsync(admin, Data.File("identity.json"));
        Assert.Contains(ModelRegistry.NotAvailable, await ModelErrorAsync(await admin.PostAsJsonAsync("/v1/jobs", Spec(model, dataset))));
        Directory.Delete(model, true);
    }

    [Fact]
    public async Task Submit_OwnSucceededJobOrCheckpoint_KeepsTheNameAndHandsTheHostThePath()
    {
        var parent = await SucceededJobAsync(_a, _dataA, checkpoints: 5);
        foreach (var (name, dir) in new[] { ($"job:{parent.Id}", Output(parent.Id)), ($"job:{parent.Id}/checkpoint-5", Path.Combine(Output(parent.Id), "checkpoint-5")) })
        {
            var response = await _a.PostAsJsonAsync("/v1/jobs", Spec(name, _dataA));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            var text = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain(factory.DataDir, text);
            var child = JsonSerializer.Deserialize<JobDto>(text, WireJson.Options)!;
            Assert.Equal((name, name), (child.Model, child.Spec.ModelNameOrPath));
            await using var scope = factory.Scope();
            var row = await factory.Db(scope).Jobs.AsNoTracking().FirstAsync(j => j.Id == child.Id);
            Assert.Equal((dir, dir), (row.ModelPath, row.RunSpec().ModelNameOrPath));
        }
        var missing = await ModelErrorAsync(await _a.PostAsJsonAsync("/v1/jobs", Spec($"job:{parent.Id}/checkpoint-7", _dataA)));
        Assert.Contains("checkpoints lists its checkpoints", missing);
    }

    [Fact]
    public async Task Submit_OwnJobNotSucceeded_Is422SayingItsState()
    {
        var response = await _a.PostAsJsonAsync("/v1/jobs", Spec("builtin:tiny-llama", _dataA));
        var queued = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        Assert.Contains("is queued", await ModelErrorAsync(await _a.PostAsJsonAsync("/v1/jobs", Spec($"job:{queued.Id}", _dataA))));
    }

    [Fact]
    public async Task RegisteredModel_AdminRegisters_TenantsUseItByNameWithoutSeeingThePath()
    {
        var dir = ModelDirs.Write(Path.Combine(Path.GetTempPath(), $"longseq-model-{Guid.NewGuid():N}"));
        var name = $"team-llama-{Guid.NewGuid():N}"[..20];
        Assert.Equal(HttpStatusCode.Forbidden, (await _a.PostAsJsonAsync("/v1/models", new { name, path = dir })).StatusCode);
        var created = await factory.Admin().PostAsJsonAsync("/v1/models", new { name, path = dir, description = "a llama" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(dir, (await created.Content.ReadFromJsonAsync<ModelDto>(WireJson.Options))!.Path);
        Assert.Equal(HttpStatusCode.Conflict, (await factory.Admin().PostAsJsonAsync("/v1/models", new { name, path = dir })).StatusCode);

        var listed = await _a.GetStringAsync("/v1/models");
        Assert.Contains(name, listed);
        Assert.DoesNotContain(dir, listed);
        var one = (await _a.GetFromJsonAsync<ModelDto>($"/v1/models/{name}", WireJson.Options))!;
        Assert.Equal((ModelKinds.Registered, "llama", 8, (string?)null), (one.Kind, one.ModelType, one.NumAttentionHeads, one.Path));

        var submitted = await _a.PostAsJsonAsync("/v1/jobs", Spec(name, _dataA));
        Assert.Equal(HttpStatusCode.Created, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        await using (var scope = factory.Scope())
            Assert.Equal(dir, (await factory.Db(scope).Jobs.AsNoTracking().FirstAsync(j => j.Id == job.Id)).ModelPath);
        var stats = (await _a.GetFromJsonAsync<DatasetDto>($"/v1/datasets/{_dataA.Id}?model={name}", WireJson.Options))!.TokenStats!;
        Assert.Equal(name, stats.Model);

        Assert.Equal(HttpStatusCode.Forbidden, (await _a.DeleteAsync($"/v1/models/{name}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await factory.Admin().DeleteAsync($"/v1/models/{name}")).StatusCode);
        Assert.Contains(ModelRegistry.NotAvailable, await ModelErrorAsync(await _a.PostAsJsonAsync("/v1/jobs", Spec(name, _dataA))));
        Assert.Equal(HttpStatusCode.NotFound, (await _a.GetAsync($"/v1/models/{name}")).StatusCode);
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task RegisterModel_InTheDataDirOrNotAModel_Is422NamingThePath()
    {
        var job = await SucceededJobAsync(_a, _dataA);
        var link = Path.Combine(Path.GetTempPath(), $"longseq-link-{Guid.NewGuid():N}");
        Directory.CreateSymbolicLink(link, Output(job.Id));                    // a way into the data directory from outside it
        foreach (var path in new[] { Output(job.Id), link })
        {
            var response = await factory.Admin().PostAsJsonAsync("/v1/models", new { name = "stolen", path });
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            Assert.Contains("data directory", await response.Content.ReadAsStringAsync());
        }
        File.Delete(link);
        var empty = Directory.CreateTempSubdirectory("longseq-empty-").FullName;
        foreach (var (body, field) in new (object, string)[] { (new { name = "x", path = empty }, "path"), (new { name = "Bad:Name", path = empty }, "name"), (new { name = "x", path = "relative" }, "path") })
        {
            var response = await factory.Admin().PostAsJsonAsync("/v1/models", body);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            Assert.True(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").TryGetProperty(field, out _));
        }
        Directory.Delete(empty);
    }

    [Fact]
    public async Task ListModels_ShowsBuiltinsAndOnlyTheCallersOwnJobs()
    {
        var mine = await SucceededJobAsync(_a, _dataA, checkpoints: 2);
        var list = (await _a.ListAsync<ModelDto>("/v1/models"))!;
        Assert.Contains(list, m => m.Id == "builtin:tiny-llama" && m.Kind == ModelKinds.Builtin);
        Assert.Contains(list, m => m.Id == $"job:{mine.Id}" && m.JobId == mine.Id);
        Assert.Contains(list, m => m.Id == $"job:{mine.Id}/checkpoint-2" && m.Step == 2);
        Assert.DoesNotContain(factory.DataDir, await _a.GetStringAsync("/v1/models"));
        var others = await _b.GetStringAsync("/v1/models");
        Assert.DoesNotContain(mine.Id.ToString(), others);
        Assert.Equal(HttpStatusCode.NotFound, (await _b.GetAsync($"/v1/models/job:{mine.Id}")).StatusCode);
    }

    [Fact]
    public async Task DatasetTokenStats_WithAServerPath_Is422WithoutTouchingIt()
    {
        var response = await _b.GetAsync($"/v1/datasets/{_dataB.Id}?model={Uri.EscapeDataString(Path.Combine(BuiltinTokenizer.EnsureCached()))}");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains(ModelRegistry.NotAvailable, await response.Content.ReadAsStringAsync());
    }
}
