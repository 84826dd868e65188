using System.Net;
using System.Net.Http.Json;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>Pause and resume of native jobs (POST /v1/jobs/{id}/pause, /resume) with the real trainer: the paused
/// job checkpoints, gives its slots back, and resumed it ends exactly where an uninterrupted twin ends.</summary>
[Trait("Category", "Slow")]
public sealed class PauseResumeTests(RealTrainerHostFixture factory, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<RealTrainerHostFixture>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private string _dataset = null!;

    public async Task InitializeAsync()
    {
        await factory.StartHostAsync();
        (_client, _) = await factory.TenantAsync();
        _dataset = (await ServiceFactory.UploadAsync(_client, Data.File("identity.json"))).Id;
    }

    public Task DisposeAsync() => factory.StopHostAsync();

    private async Task<JobDto> SubmitAsync(int steps) =>
        await Json<JobDto>(await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset, max_steps = steps, seed = 11, logging_steps = 1 }));

    private static async Task<T> Json<T>(HttpResponseMessage response)
    {
        Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<T>(WireJson.Options))!;
    }

    private async Task<JobDto> WaitAsync(Guid id, Func<JobDto, bool> until, int seconds = 180)
    {
        JobDto job = null!;
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); DateTime.UtcNow < deadline; await Task.Delay(100))
            if (until(job = (await _client.GetFromJsonAsync<JobDto>($"/v1/jobs/{id}", WireJson.Options))!)) return job;
        throw new TimeoutException($"job {id} is {job.State}; events: {await _client.GetStringAsync($"/v1/jobs/{id}/events")}");
    }

    [Fact]
    public async Task PausedJob_Resumed_EndsWithTheWeightsAndLossesOfAnUninterruptedRun()
    {
        const int steps = 200;   // long enough that the pause (one heartbeat away) lands mid-run on a fast machine too
        var straight = await SubmitAsync(steps);
        var paused = await SubmitAsync(steps);
        await WaitAsync(paused.Id, j => j.CurrentStep >= 1);                   // its trainer is training (not still starting)

        var pausing = await Json<JobDto>(await _client.PostAsync($"/v1/jobs/{paused.Id}/pause", null));
        Assert.Equal(JobStates.Pausing, pausing.State);
        Assert.Equal(HttpStatusCode.Conflict, (await _client.PostAsync($"/v1/jobs/{paused.Id}/resume", null)).StatusCode); // still saving its checkpoint
        var stopped = await WaitAsync(paused.Id, j => j.State != JobStates.Pausing);
        Assert.Equal(JobStates.Paused, stopped.State);
        int at = stopped.CurrentStep!.Value;
        Assert.InRange(at, 1, steps - 1);
        output.WriteLine($"paused after step {at} of {steps}");
        var checkpoints = (await _client.ListAsync<CheckpointDto>($"/v1/jobs/{paused.Id}/checkpoints"))!;
        Assert.Equal([at], checkpoints.Select(c => c.Step));                     // the pause's own checkpoint, of the step it stopped after
        var hosts = (await _client.ListAsync<HostDto>("/v1/hosts"))!;
        Assert.DoesNotContain(hosts.SelectMany(h => h.Slots), s => s.JobId == paused.Id); // its slots are free
        await Task.Delay(1500);
        Assert.Equal(at, (await _client.GetFromJsonAsync<JobDto>($"/v1/jobs/{paused.Id}", WireJson.Options))!.CurrentStep); // nothing trains while paused

        var resumed = await Json<JobDto>(await _client.PostAsync($"/v1/jobs/{paused.Id}/resume", null));
        Assert.Equal(JobStates.Queued, resumed.State);
        var a = await WaitAsync(straight.Id, j => JobStates.IsTerminal(j.State));
        var b = await WaitAsync(paused.Id, j => JobStates.IsTerminal(j.State));
        Assert.Equal((JobStates.Succeeded, JobStates.Succeeded), (a.State, b.State));
        Assert.Equal(2, b.Attempt);                                               // placed again after the pause

        var lossA = (await _client.ListAsync<MetricDto>($"/v1/jobs/{straight.Id}/metrics"))!.Select(m => (m.Step, m.Record.Loss)).ToList();
        var lossB = (await _client.ListAsync<MetricDto>($"/v1/jobs/{paused.Id}/metrics"))!.Select(m => (m.Step, m.Record.Loss)).ToList();
        Assert.Equal(Enumerable.Range(1, steps), lossA.Select(x => x.Step));
        Assert.Equal(lossA, lossB);                                               // the loss curve continues exactly
        var weightsA = await _client.GetByteArrayAsync($"/v1/jobs/{straight.Id}/artifacts/model.safetensors");
        var weightsB = await _client.GetByteArrayAsync($"/v1/jobs/{paused.Id}/artifacts/model.safetensors");
        Assert.True(weightsA.AsSpan().SequenceEqual(weightsB), "final weights differ from the uninterrupted run's");

        var events = (await _client.ListAsync<JobEventDto>($"/v1/jobs/{paused.Id}/events"))!;
        var path = events.Select(e => e.ToState).ToList();
        Assert.Equal([JobStates.Running, JobStates.Pausing, JobStates.Paused, JobStates.Queued, JobStates.Scheduled, JobStates.Running, JobStates.Succeeded],
            path.SkipWhile(s => s != JobStates.Running));
    }

    [Fact]
    public async Task Pause_JobNotYetRunning_PausesAtOnceAndACancelledOneCannotResume()
    {
        await factory.StopHostAsync();                                            // nothing is placed: the job stays queued
        var job = await SubmitAsync(4);
        var paused = await Json<JobDto>(await _client.PostAsync($"/v1/jobs/{job.Id}/pause", null));
        Assert.Equal(JobStates.Paused, paused.State);
        Assert.Equal(HttpStatusCode.Conflict, (await _client.PostAsync($"/v1/jobs/{job.Id}/pause", null)).StatusCode);
        var cancelled = await Json<JobDto>(await _client.PostAsync($"/v1/jobs/{job.Id}/cancel", null));
        Assert.Equal(JobStates.Cancelled, cancelled.State);
        var refused = await _client.PostAsync($"/v1/jobs/{job.Id}/resume", null);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("only a paused job can be resumed", await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await _client.PostAsync($"/v1/jobs/{Guid.NewGuid()}/pause", null)).StatusCode);
    }
}
