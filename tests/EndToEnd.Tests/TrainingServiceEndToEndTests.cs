using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using LongSeqService.Trainer.Model;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>
/// The service with real processes: API + scheduler + trainer host + trainer child processes. Upload a
/// real dataset, submit a sequence-parallel job, follow it over SignalR, download the model and load it.
/// </summary>
[Trait("Category", "Slow")]
public class TrainingServiceEndToEndTests(SystemUnderTest system) : IClassFixture<SystemUnderTest>
{
    [Fact]
    public async Task SftJob_SequenceParallel2_StreamsProgressSucceedsAndModelLoadsBack()
    {
        using var api = system.Client();
        var dataset = await SystemUnderTest.UploadDatasetAsync(api, "identity.json");
        Assert.Equal("alpaca", dataset["format"]!.GetValue<string>());

        await using var hub = await Hub();
        var progress = new List<TrainerLogRecord>();
        var states = new List<string>();
        var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.On<MetricDto>(ProgressHubNames.Progress, m => { lock (progress) progress.Add(m.Record); });
        hub.On<JobStateMessage>(ProgressHubNames.State, s =>
        {
            lock (states) states.Add(s.State);
            if (JobStates.IsTerminal(s.State)) done.TrySetResult(s.State);
        });
        await hub.InvokeAsync(ProgressHubNames.SubscribeTenant);

        var job = await Submit(api, new()
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = "sft", ["dataset"] = dataset["id"]!.GetValue<string>(),
            ["sequence_parallel_size"] = 2, ["max_steps"] = 12, ["learning_rate"] = 2e-3, ["cutoff_len"] = 256,
            ["per_device_train_batch_size"] = 2, ["logging_steps"] = 2, ["save_steps"] = 6,
        });
        var final = await done.Task.WaitAsync(TimeSpan.FromMinutes(4));
        Assert.True(final == "succeeded", $"job ended {final}: {await api.GetStringAsync($"/v1/jobs/{job}")}\n{system.Logs()}");

        lock (progress)
        {
            Assert.NotEmpty(progress);
            Assert.Equal(12, progress.Max(p => p.CurrentSteps));
            Assert.All(progress, p => Assert.Equal(12, p.TotalSteps));
            Assert.Equal(2, progress[^1].RankPeakBytes!.Length);            // one figure per SP rank
        }
        lock (states) Assert.Equal(["scheduled", "running", "succeeded"], states.SkipWhile(s => s != "scheduled").ToArray());

        var metrics = await api.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics");
        Assert.True(metrics!.Count >= 6, "every logged step is persisted");
        Assert.True(metrics[^1].Record.Loss < metrics[0].Record.Loss, "the loss went down");

        var dir = await DownloadModel(api, job);
        using var _ = torch.NewDisposeScope();
        var (model, config, _) = ModelLoader.Load(dir, torch.ScalarType.Float32, new SdpaAttention());
        using (model)
        {
            Assert.Equal("llama", config.ModelType);
            var logits = model.forward(torch.tensor(new long[] { 1, 2, 3 }).unsqueeze(0), torch.arange(3).unsqueeze(0));
            Assert.Equal(new long[] { 1, 3, config.VocabSize }, logits.shape);
        }

        // A checkpoint of the tenant's own job is a model the host can train from: it holds the tokenizer too.
        var fromCheckpoint = await Submit(api, new()
        {
            ["model_name_or_path"] = $"job:{job}/checkpoint-6", ["stage"] = "sft", ["dataset"] = dataset["id"]!.GetValue<string>(),
            ["max_steps"] = 2, ["cutoff_len"] = 256,
        });
        var state = await WaitForState(api, fromCheckpoint, JobStates.IsTerminal, TimeSpan.FromMinutes(3));
        Assert.True(state == "succeeded", $"training from job:{job}/checkpoint-6 ended {state}: {await api.GetStringAsync($"/v1/jobs/{fromCheckpoint}/events")}");
    }

    [Fact]
    public async Task DpoJob_PreferenceData_SucceedsWithRewardMetrics()
    {
        using var api = system.Client();
        var dataset = await SystemUnderTest.UploadDatasetAsync(api, "dpo_en_demo.json");
        Assert.True(dataset["is_preference"]!.GetValue<bool>());
        var job = await Submit(api, new()
        {
            ["model_name_or_path"] = "builtin:tiny-qwen2", ["stage"] = "dpo", ["dataset"] = dataset["id"]!.GetValue<string>(),
            ["sequence_parallel_size"] = 2, ["max_steps"] = 4, ["max_samples"] = 8, ["cutoff_len"] = 256,
            ["finetuning_type"] = "lora", ["learning_rate"] = 1e-3, ["logging_steps"] = 1,
        });
        var state = await WaitForState(api, job, JobStates.IsTerminal, TimeSpan.FromMinutes(4));
        Assert.True(state == "succeeded", $"job ended {state}\n{system.Logs()}");
        var metrics = await api.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics");
        Assert.All(metrics!, m => Assert.NotNull(m.Record.RewardsAccuracies));
        var files = await api.GetStringAsync($"/v1/jobs/{job}/artifacts");
        Assert.Contains("adapter_model.safetensors", files);
        Assert.Contains("adapter_config.json", files);
    }

    [Fact]
    public async Task HostKilledMidRun_RestartedHost_ResumesFromCheckpointAndSucceeds()
    {
        using var api = system.Client();
        var dataset = await SystemUnderTest.UploadDatasetAsync(api, "alpaca_en_demo.json");
        var job = await Submit(api, new()
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["stage"] = "sft", ["dataset"] = dataset["id"]!.GetValue<string>(),
            ["sequence_parallel_size"] = 2, ["max_steps"] = 40, ["cutoff_len"] = 512, ["per_device_train_batch_size"] = 2,
            ["logging_steps"] = 1, ["save_steps"] = 5, ["learning_rate"] = 1e-3,
        });
        // Wait for a checkpoint, then kill the host the hard way.
        await WaitFor(async () => (await api.ListAsync<CheckpointDto>($"/v1/jobs/{job}/checkpoints"))!.Count > 0,
            TimeSpan.FromMinutes(3));
        system.KillHost();
        var stepAtKill = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!.CurrentStep;
        system.StartHost();

        var state = await WaitForState(api, job, JobStates.IsTerminal, TimeSpan.FromMinutes(5));
        var final = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
        Assert.True(state == "succeeded", $"job ended {state}: {final.Error}\n{system.Logs()}");
        Assert.True(final.Attempt >= 2, "the run was restarted");
        Assert.True(stepAtKill < 40, "the host was killed before the run finished");
        var events = await api.ListAsync<JobEventDto>($"/v1/jobs/{job}/events");
        Assert.Contains(events!, e => e.ToState == "queued" && e.FromState is "running" or "scheduled");
        var metrics = await api.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics");
        Assert.Equal(Enumerable.Range(1, 40), metrics!.Select(m => m.Step));   // one record per step, the resumed ones replacing nothing twice
    }

    private async Task<HubConnection> Hub()
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(system.BaseUrl, ProgressHubNames.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(system.AdminKey))
            .AddJsonProtocol(o => WireJson.Configure(o.PayloadSerializerOptions))
            .Build();
        await hub.StartAsync();
        return hub;
    }

    private static async Task<Guid> Submit(HttpClient api, JsonObject spec)
    {
        var response = await api.PostAsJsonAsync("/v1/jobs", spec);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
    }

    private static async Task<string> WaitForState(HttpClient api, Guid job, Func<string, bool> done, TimeSpan timeout)
    {
        string state = "";
        await WaitFor(async () => done(state = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!.State), timeout);
        return state;
    }

    private static async Task WaitFor(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met within " + timeout);
            await Task.Delay(300);
        }
    }

    private static async Task<string> DownloadModel(HttpClient api, Guid job)
    {
        var dir = Directory.CreateTempSubdirectory("longseq-download-").FullName;
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json" })
        {
            var bytes = await api.GetByteArrayAsync($"/v1/jobs/{job}/artifacts/{f}");
            await File.WriteAllBytesAsync(Path.Combine(dir, f), bytes);
        }
        return dir;
    }
}
