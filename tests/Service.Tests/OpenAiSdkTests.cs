#pragma warning disable OPENAI001 // the SDK marks its fine-tuning client experimental; it is what OpenAI's users call
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using OpenAI;
using OpenAI.Files;
using OpenAI.FineTuning;

namespace LongSeqService.Service.Tests;

/// <summary>
/// The official OpenAI .NET SDK (NuGet OpenAI) against the service, with a real trainer host training the built-in tiny
/// models: files, supervised and DPO jobs, paging, events with metrics, checkpoints, pause, resume and cancel, all through
/// the SDK's own types. Where the SDK has no typed method it offers protocol methods, used here: pause and resume
/// (ClientResult only; the typed job is then refreshed with UpdateStatusAsync), and a create whose body carries the
/// <c>longseq</c> extension (FineTuningOptions has no slot for extra keys; its own serialization is the body).
/// </summary>
[Trait("Category", "Slow")]
public sealed class OpenAiSdkTests(RealTrainerHostFixture factory) : IClassFixture<RealTrainerHostFixture>, IAsyncLifetime
{
    private static readonly FineTuningStatus Paused = new("paused");
    private OpenAIClient _openai = null!;
    private HttpClient _native = null!;

    public async Task InitializeAsync()
    {
        await factory.StartHostAsync();
        (_native, var key) = await factory.TenantAsync();
        _openai = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(factory.Server.BaseAddress, "v1"),
            Transport = new HttpClientPipelineTransport(factory.CreateClient()),
        });
    }

    public Task DisposeAsync() => factory.StopHostAsync();

    private static string ChatFile(int rows) => string.Concat(Enumerable.Range(0, rows).Select(i =>
        $$"""{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is {{i}} + {{i}}?"}, {"role": "assistant", "content": "It is {{2 * i}}."}]}""" + "\n"));

    private static string PreferenceFile(int rows) => string.Concat(Enumerable.Range(0, rows).Select(i =>
        $$"""{"input": {"messages": [{"role": "user", "content": "Spell {{i}}."}]}, "preferred_output": [{"role": "assistant", "content": "Number {{i}}."}], "non_preferred_output": [{"role": "assistant", "content": "No."}]}""" + "\n"));

    private static async Task Until(FineTuningJob job, Func<FineTuningJob, bool> done, string what, int seconds = 240)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); DateTime.UtcNow < deadline; await Task.Delay(200))
        {
            await job.UpdateStatusAsync();
            if (done(job)) return;
        }
        throw new TimeoutException($"job {job.JobId} is {job.Status}, waiting for {what}");
    }

    private static async Task<List<T>> All<T>(AsyncCollectionResult<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items) list.Add(item);
        return list;
    }

    private static int? Step(FineTuningEvent e) => e.Kind == FineTuningJobEventKind.Metrics ? JsonNode.Parse(e.Data)!["step"]!.GetValue<int>() : null;

    [Fact]
    public async Task Sdk_UploadsTrainsPagesPausesResumesAndCancels()
    {
        // Files: an upload is a dataset, listed and downloaded as sent.
        var files = _openai.GetOpenAIFileClient();
        string chat = ChatFile(8), preference = PreferenceFile(4);
        OpenAIFile sftFile = await files.UploadFileAsync(BinaryData.FromString(chat), "chat.jsonl", FileUploadPurpose.FineTune);
        OpenAIFile dpoFile = await files.UploadFileAsync(BinaryData.FromString(preference), "preference.jsonl", FileUploadPurpose.FineTune);
        Assert.Equal((FilePurpose.FineTune, "chat.jsonl", Encoding.UTF8.GetByteCount(chat)), (sftFile.Purpose, sftFile.Filename, sftFile.SizeInBytes));
        OpenAIFileCollection listed = await files.GetFilesAsync(FilePurpose.FineTune);
        Assert.Equal([dpoFile.Id, sftFile.Id], listed.Select(f => f.Id));
        Assert.Equal(preference, (await files.DownloadFileAsync(dpoFile.Id)).Value.ToString());

        // Jobs: supervised and DPO through the typed API, a long SP=2 one with the longseq extension through the protocol method.
        var ft = _openai.GetFineTuningClient();
        FineTuningJob supervised = await ft.FineTuneAsync("builtin:tiny-llama", sftFile.Id, waitUntilCompleted: false, new FineTuningOptions
        {
            Seed = 7, Suffix = "sdk",
            TrainingMethod = FineTuningTrainingMethod.CreateSupervised(1, 2, HyperparameterLearningRate.CreateMultiplier(2.0)),
            Metadata = { ["team"] = "sdk" },
        });
        FineTuningJob dpo = await ft.FineTuneAsync("builtin:tiny-llama", dpoFile.Id, waitUntilCompleted: false, new FineTuningOptions
        {
            TrainingMethod = FineTuningTrainingMethod.CreateDirectPreferenceOptimization(1, 1, HyperparameterLearningRate.CreateAuto(), HyperparameterBetaFactor.CreateAuto()),
        });
        var longBody = JsonNode.Parse(ModelReaderWriter.Write(new FineTuningOptions
        {
            Seed = 3, TrainingMethod = FineTuningTrainingMethod.CreateSupervised(1, 50, HyperparameterLearningRate.CreateAuto()),
        }).ToString())!.AsObject();
        longBody["model"] = "builtin:tiny-llama";
        longBody["training_file"] = sftFile.Id;
        longBody["longseq"] = new JsonObject { ["sequence_parallel_size"] = 2, ["logging_steps"] = 1, ["max_steps"] = 200 };
        FineTuningJob longJob = await ft.FineTuneAsync(BinaryContent.Create(BinaryData.FromString(longBody.ToJsonString())), waitUntilCompleted: false, new RequestOptions());
        Assert.Equal(2, (await _native.GetFromJsonAsync<JobDto>($"/v1/jobs/{longJob.JobId}", WireJson.Options))!.SequenceParallelSize); // the same job, natively

        // Paging: one job a page, newest first, every job once.
        var pages = 0;
        await foreach (var _ in ft.GetJobsAsync(new FineTuningJobCollectionOptions { PageSize = 1 }).GetRawPagesAsync()) pages++;
        Assert.Equal(3, pages);
        Assert.Equal([longJob.JobId, dpo.JobId, supervised.JobId], (await All(ft.GetJobsAsync(new FineTuningJobCollectionOptions { PageSize = 1 }))).Select(j => j.JobId));

        // Pause the long job once it has trained a few steps; it checkpoints, and resumes from that checkpoint.
        await Until(longJob, j => j.Status == FineTuningStatus.Running, "running");
        for (var deadline = DateTime.UtcNow.AddSeconds(120); (await All(longJob.GetEventsAsync(new GetEventsOptions { PageSize = 100 }))).Max(Step) is not >= 1; await Task.Delay(200))
            Assert.True(DateTime.UtcNow < deadline, "no metrics event from the long job");
        ClientResult pausing = await ft.PauseFineTuningJobAsync(longJob.JobId, new RequestOptions());
        Assert.Equal(200, pausing.GetRawResponse().Status);
        await Until(longJob, j => j.Status == Paused, "paused");
        var checkpoints = await All(longJob.GetCheckpointsAsync());
        var checkpoint = Assert.Single(checkpoints);
        Assert.InRange(checkpoint.StepNumber, 1, 199);
        Assert.Equal(($"job:{longJob.JobId}/checkpoint-{checkpoint.StepNumber}", longJob.JobId), (checkpoint.ModelId, checkpoint.JobId));
        Assert.NotNull(checkpoint.Metrics.TrainLoss);
        await ft.ResumeFineTuningJobAsync(longJob.JobId, new RequestOptions());
        await Until(longJob, j => j.Status != Paused, "resumed");
        for (var deadline = DateTime.UtcNow.AddSeconds(120); (await All(longJob.GetEventsAsync(new GetEventsOptions { PageSize = 100 }))).Max(Step) is not { } s || s <= checkpoint.StepNumber; await Task.Delay(200))
            Assert.True(DateTime.UtcNow < deadline, "the resumed job logged no step after its checkpoint");
        var metrics = (await _native.ListAsync<MetricDto>($"/v1/jobs/{longJob.JobId}/metrics"))!;
        Assert.Equal(Enumerable.Range(1, metrics.Count), metrics.Select(m => m.Step));   // no step lost or repeated across the pause
        await longJob.CancelAndUpdateAsync();
        await Until(longJob, j => j.Status == FineTuningStatus.Cancelled, "cancelled");

        // The supervised and DPO jobs finish; retrieve shows what was asked, events include the metrics (paged).
        await Until(supervised, j => j.HasCompleted, "completion");
        await Until(dpo, j => j.HasCompleted, "completion");
        Assert.Equal((FineTuningStatus.Succeeded, FineTuningStatus.Succeeded), (supervised.Status, dpo.Status));
        var got = await ft.GetJobAsync(supervised.JobId);
        Assert.Equal(($"job:{supervised.JobId}", "builtin:tiny-llama", sftFile.Id, 7, "sdk", "sdk"), (got.Value, got.BaseModel, got.TrainingFileId, got.Seed, got.UserProvidedSuffix, got.Metadata["team"]));
        var hp = Assert.IsType<HyperparametersForSupervised>(got.MethodHyperparameters);
        Assert.Equal((2, 1, 2f), (hp.EpochCount, hp.BatchSize, hp.LearningRateMultiplier));
        Assert.IsType<HyperparametersForDPO>((await ft.GetJobAsync(dpo.JobId)).MethodHyperparameters);

        var events = await All(got.GetEventsAsync(new GetEventsOptions { PageSize = 3 }));
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
        var logged = (await _native.ListAsync<MetricDto>($"/v1/jobs/{supervised.JobId}/metrics"))!;
        var metricEvents = events.Where(e => e.Kind == FineTuningJobEventKind.Metrics).ToList();
        Assert.Equal(logged.Select(m => m.Step).Reverse(), metricEvents.Select(e => Step(e)!.Value));
        Assert.Equal(logged[^1].Record.Loss, JsonNode.Parse(metricEvents[0].Data)!["train_loss"]!.GetValue<double>());
        Assert.Contains(events, e => e.Kind == FineTuningJobEventKind.Message && e.Message.Contains("succeeded"));

        // A job submitted natively is the SDK's too.
        var nativeJob = await _native.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = sftFile.Id, max_steps = 2 });
        var nativeId = (await nativeJob.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id.ToString();
        var seen = await ft.GetJobAsync(nativeId);
        Assert.Equal(sftFile.Id, seen.TrainingFileId);
        await Until(seen, j => j.HasCompleted, "completion");
        Assert.Equal(FineTuningStatus.Succeeded, seen.Status);
    }
}
