using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using LongSeqService.Client;
using LongSeqService.Client.Models;
using LongSeqService.Shared.Progress;
using Microsoft.Extensions.DependencyInjection;
using StateMessage = LongSeqService.Shared.Progress.JobStateMessage;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Kiota.Abstractions;
using Microsoft.Kiota.Abstractions.Authentication;
using Microsoft.Kiota.Http.HttpClientLibrary;

namespace LongSeqService.Service.Tests;

/// <summary>
/// The service driven only through the client that Kiota generates from docs/openapi/v1.json in the build
/// (tests/Service.Tests' csproj), the way a platform team would: upload, submit SP=2, follow, read the
/// metrics page by page, download a nested checkpoint file. The hub is watched beside it.
/// </summary>
[Trait("Category", "Slow")]
public sealed class GeneratedClientTests(RealTrainerHostFixture factory) : IClassFixture<RealTrainerHostFixture>
{
    [Fact]
    public async Task GeneratedClient_UploadSubmitSp2FollowAndDownload_NumbersAndFilesIntact()
    {
        await factory.StartHostAsync();
        var (_, key) = await factory.TenantAsync();
        var http = factory.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var client = new LongSeqClient(new HttpClientRequestAdapter(new AnonymousAuthenticationProvider(), httpClient: http)
            { BaseUrl = http.BaseAddress!.ToString().TrimEnd('/') });

        var states = new List<StateMessage>();
        await using var hub = factory.Hub(key);
        hub.On<StateMessage>(ProgressHubNames.State, m => { lock (states) states.Add(m); });
        await hub.StartAsync();
        await hub.InvokeAsync(ProgressHubNames.SubscribeTenant);

        var upload = new MultipartBody();
        upload.AddOrReplacePart("file", "application/json", File.OpenRead(Data.File("identity.json")), "identity.json");
        var dataset = (await client.V1.Datasets.PostAsync(upload))!;
        Assert.Equal(DatasetDto_format.Alpaca, dataset.Format);

        var submitted = (await client.V1.Jobs.PostAsync(new JobSubmission
        {
            ModelNameOrPath = "builtin:tiny-llama", Dataset = dataset.Id, SequenceParallelSize = 2, MaxSteps = 4,
            LoggingSteps = 1, SaveSteps = 2, CutoffLen = 128, Seed = 7,
        }))!;
        var id = submitted.Id!.Value;
        Assert.Equal(JobDto_state.Queued, submitted.State);
        Assert.Equal(2, submitted.SequenceParallelSize);

        JobDto job = submitted;
        for (var deadline = DateTime.UtcNow.AddMinutes(5); job.State is not (JobDto_state.Succeeded or JobDto_state.Failed or JobDto_state.Cancelled); await Task.Delay(250))
        {
            Assert.True(DateTime.UtcNow < deadline, $"job {id} still {job.State}");
            job = (await client.V1.Jobs[id].GetAsync())!;
        }
        Assert.True(job.State == JobDto_state.Succeeded, $"job ended {job.State}: {job.Error}");
        Assert.Equal(1.0, job.Progress);

        // Metrics page by page (two a page), their numbers as the trainer wrote them.
        var metrics = new List<Client.Models.MetricDto>();
        for (string? after = null; ;)
        {
            var page = (await client.V1.Jobs[id].Metrics.GetAsync(c => { c.QueryParameters.After = after; c.QueryParameters.Limit = 2; }))!;
            metrics.AddRange(page.Data!);
            if (page.HasMore != true) break;
            after = page.NextAfter;
        }
        var output = FinishedJobs.Output(factory, id);
        var logged = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(logged.Select(l => l["current_steps"]!.GetValue<int>()), metrics.Select(m => m.Step!.Value));
        Assert.Equal([1, 2, 3, 4], metrics.Select(m => m.Step!.Value));
        for (int i = 0; i < logged.Count; i++)
        {
            var r = metrics[i].Record!;
            Assert.Equal(logged[i]["loss"]!.GetValue<double>(), r.Loss);
            Assert.Equal(logged[i]["tokens_per_sec"]!.GetValue<double>(), r.TokensPerSec);
            Assert.Equal(logged[i]["lr"]!.GetValue<double>(), r.Lr);
            Assert.True(r.Loss > 0 && r.TokensPerSec > 0, $"step {i + 1}: loss {r.Loss}, tokens/s {r.TokensPerSec}");
            // The step's own time, as the trainer logged it (PostgreSQL keeps microseconds, the trainer wrote 100 ns ticks).
            var at = DateTimeOffset.Parse(logged[i]["logged_at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True((at - metrics[i].At!.Value).Duration() < TimeSpan.FromMicroseconds(1), $"step {i + 1}: at {metrics[i].At:O}, logged {at:O}");
        }

        // A nested checkpoint file: the generated client encodes the path's slash (checkpoint-2%2Fconfig.json).
        var expected = File.ReadAllBytes(Path.Combine(output, "checkpoint-2", "config.json"));
        await using (var file = (await client.V1.Jobs[id].Artifacts["checkpoint-2/config.json"].GetAsync())!)
        {
            var bytes = new MemoryStream();
            await file.CopyToAsync(bytes);
            Assert.Equal(expected, bytes.ToArray());
        }
        var checkpoint = (await client.V1.Jobs[id].Checkpoints.GetAsync())!.Data!.Last();
        Assert.Equal($"checkpoint-{checkpoint.Step}", checkpoint.Path);
        await using (var file = (await client.V1.Jobs[id].Download.GetAsync(c => c.QueryParameters.Path = $"{checkpoint.Path}/config.json"))!)
        {
            var bytes = new MemoryStream();
            await file.CopyToAsync(bytes);
            Assert.Equal(File.ReadAllBytes(Path.Combine(output, checkpoint.Path!, "config.json")), bytes.ToArray());
        }

        // A 404 is a problem the client raises as its declared error type.
        await Assert.ThrowsAsync<Client.V1.Jobs.Item.JobDto404Error>(() => client.V1.Jobs[Guid.NewGuid()].GetAsync());

        // The hub pushed every transition, from validating to succeeded, in order.
        for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline && !states.Any(s => s.JobId == id && s.State == "succeeded"); ) await Task.Delay(100);
        List<string> seen;
        lock (states) seen = states.Where(s => s.JobId == id).Select(s => s.State).ToList();
        Assert.Equal(["validating", "queued", "scheduled", "running", "succeeded"], seen);
    }
}
