using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using LongSeqService.Trainer.Host;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace LongSeqService.Service.Tests;

/// <summary>The Api with its scheduler, and a real trainer host (HostAgent: registration, heartbeats with
/// their leases, the report spool, the child-process launcher) in this process. The trainer it launches is
/// fake-trainer.sh, a stand-in for the trainer CLI that writes the same files.</summary>
public class HostFlowFixture : SchedulerServiceFactory
{
    public const string HostName = "flow-host";
    private CancellationTokenSource? _stop;
    private Task? _agentTask;
    private HostAgent? _agent;

    public virtual string StateDir => Path.Combine(DataDir, "host-state");
    /// <summary>How the host reaches artifacts: the shared data directory here, its own disk in <see cref="RemoteHostFlowFixture"/>.</summary>
    protected virtual string Artifacts => LongSeqService.Shared.Hosts.ArtifactAccess.Shared;
    /// <summary>The trainer the host launches: fake-trainer.sh here, the real trainer CLI in <see cref="RealTrainerHostFixture"/>.</summary>
    protected virtual IReadOnlyList<string> TrainerCommand => ["bash", Path.Combine(AppContext.BaseDirectory, "fake-trainer.sh")];
    public HostAgent? Agent => _agent;

    public async Task StartHostAsync(HttpMessageHandler? handler = null)
    {
        var options = new HostOptions
        {
            Api = Server.BaseAddress, Token = HostKey, Slots = 4, Name = HostName, StateDir = StateDir,
            TrainerCommand = TrainerCommand, Artifacts = Artifacts, UploadPollInterval = TimeSpan.FromMilliseconds(100),
            LogPollInterval = TimeSpan.FromMilliseconds(100), KillGrace = TimeSpan.FromSeconds(2),
        };
        _stop = new CancellationTokenSource();
        _agent = new HostAgent(options, TextWriter.Null, handler ?? Server.CreateHandler());
        _agentTask = Task.Run(() => _agent.RunAsync(_stop.Token));
        // 10 s was not always enough under load (CI beside other work: the first registration also warms the API up).
        for (var until = DateTime.UtcNow.AddSeconds(60); _agent.HostId == null && !_agentTask.IsCompleted && DateTime.UtcNow < until;) await Task.Delay(100);
        Assert.True(_agent.HostId != null, _agentTask.IsFaulted ? $"the host agent failed: {_agentTask.Exception}" : "the host did not register within 60 s");
    }

    /// <summary>Stops the host the way SIGTERM does: its trainers are stopped and reported interrupted.</summary>
    public async Task StopHostAsync()
    {
        if (_agent == null) return;
        await _stop!.CancelAsync();
        try { await _agentTask!; } catch (OperationCanceledException) { }
        await _agent.DisposeAsync();
        _agent = null;
    }

    protected override Task BeforeDisposeAsync() => StopHostAsync();
}

public sealed class HostFlowTests(HostFlowFixture factory) : IClassFixture<HostFlowFixture>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private string _key = null!;
    private DatasetDto _dataset = null!;

    public async Task InitializeAsync()
    {
        await factory.StartHostAsync();
        (_client, _key) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public Task DisposeAsync() => factory.StopHostAsync();

    private async Task<JobDto> SubmitAsync(int seed, int steps = 6)
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = 2, max_steps = steps, seed });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
    }

    private async Task<JobDto> WaitAsync(Guid id, Func<JobDto, bool> until, int seconds = 60)
    {
        JobDto job = null!;
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            job = (await _client.GetFromJsonAsync<JobDto>($"/v1/jobs/{id}", WireJson.Options))!;
            if (until(job)) return job;
        }
        var events = await _client.GetStringAsync($"/v1/jobs/{id}/events");
        throw new TimeoutException($"job {id} is {job.State}; events: {events}");
    }

    private async Task<HubConnection> HubAsync()
    {
        var hub = factory.Hub(_key);
        await hub.StartAsync();
        return hub;
    }

    private static bool Alive(int pid) =>
        File.Exists($"/proc/{pid}/stat") && File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1][0] != 'Z';

    [Fact]
    public async Task Job_RunsOnTheHost_StreamsProgressAndSucceeds()
    {
        await using var hub = await HubAsync();
        var progress = new ConcurrentBag<MetricDto>();
        var states = new ConcurrentBag<JobStateMessage>();
        hub.On<MetricDto>(ProgressHubNames.Progress, progress.Add);
        hub.On<JobStateMessage>(ProgressHubNames.State, states.Add);
        await hub.InvokeAsync(ProgressHubNames.SubscribeTenant);

        var job = await SubmitAsync(seed: 42, steps: 6);
        var done = await WaitAsync(job.Id, j => JobStates.IsTerminal(j.State));

        Assert.Equal(JobStates.Succeeded, done.State);
        Assert.Equal((6, 6, 384L), (done.CurrentStep, done.TotalSteps, done.TrainedTokens));
        Assert.Equal(1.0, done.Progress);
        var metrics = await _client.ListAsync<MetricDto>($"/v1/jobs/{job.Id}/metrics");
        Assert.Equal([1, 2, 3, 4, 5, 6], metrics!.Select(m => m.Step));
        Assert.Equal(2.0 / 3, metrics![2].Record.Loss!.Value, 4);
        Assert.Equal([1000L, 2000L], metrics[0].Record.RankPeakBytes!);
        for (int i = 0; i < 50 && !states.Any(s => s.State == JobStates.Succeeded); i++) await Task.Delay(100);
        Assert.Contains(states, s => s.JobId == job.Id && s.State == JobStates.Succeeded);
        Assert.Contains(states, s => s.JobId == job.Id && s.State == JobStates.Running);
        Assert.Equal([1, 2, 3, 4, 5, 6], progress.Where(p => p.JobId == job.Id).Select(p => p.Step).Order());

        var events = await _client.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events");
        Assert.Equal([JobStates.Validating, JobStates.Queued, JobStates.Scheduled, JobStates.Running, JobStates.Succeeded], events!.Select(e => e.ToState));
        var artifacts = await _client.ListAsync<ArtifactDto>($"/v1/jobs/{job.Id}/artifacts");
        Assert.Contains(artifacts!, a => a.Path == "model.safetensors");
        Assert.Contains(artifacts!, a => a.Path == "checkpoint-6/step.txt");
        Assert.Equal($"weights of {job.Id}", await _client.GetStringAsync($"/v1/jobs/{job.Id}/artifacts/model.safetensors"));
        var config = JobSpecParser.FromJson(System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(factory.DataDir, "jobs", job.Id.ToString(), "config.json")))!.AsObject());
        Assert.Equal(Path.Combine(factory.DataDir, "datasets", _dataset.Sha256[..2], _dataset.Sha256 + ".json"), config.Dataset);
        Assert.Equal(2, config.SequenceParallelSize);
        var hosts = await _client.ListAsync<LongSeqService.Shared.Hosts.HostDto>("/v1/hosts");
        Assert.Equal(4, hosts!.Single(h => h.Name == HostFlowFixture.HostName).FreeSlots); // released
    }

    [Fact]
    public async Task Job_TrainerFails_IsFailedWithItsErrorLine()
    {
        var job = await SubmitAsync(seed: 13);
        var done = await WaitAsync(job.Id, j => JobStates.IsTerminal(j.State));
        Assert.Equal(JobStates.Failed, done.State);
        Assert.Equal("error: the fake trainer failed on purpose", done.Error);
        Assert.Contains("exited with code 3", (await _client.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events"))!.Last().Reason);
    }

    [Fact]
    public async Task Cancel_RunningJob_StopsTheTrainerAndItsChildren()
    {
        var job = await SubmitAsync(seed: 99);
        var runDir = Path.Combine(factory.DataDir, "jobs", job.Id.ToString());
        await WaitAsync(job.Id, j => j.State == JobStates.Running && File.Exists(Path.Combine(runDir, "grandchild.pid")));
        await Task.Delay(200);
        int trainer = int.Parse(File.ReadAllText(Path.Combine(runDir, "trainer.pid")));
        int grandchild = int.Parse(File.ReadAllText(Path.Combine(runDir, "grandchild.pid")));
        Assert.True(Alive(trainer) && Alive(grandchild));

        var response = await _client.PostAsync($"/v1/jobs/{job.Id}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(JobStates.Cancelling, (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.State);
        var done = await WaitAsync(job.Id, j => JobStates.IsTerminal(j.State), seconds: 30);

        Assert.Equal(JobStates.Cancelled, done.State);
        for (int i = 0; i < 30 && (Alive(trainer) || Alive(grandchild)); i++) await Task.Delay(100);
        Assert.False(Alive(trainer), "the trainer survived the cancel");
        Assert.False(Alive(grandchild), "the trainer's child survived the cancel");
    }

    [Fact]
    public async Task HostRestart_MidRun_RequeuesAndResumesFromTheCheckpoint()
    {
        var job = await SubmitAsync(seed: 77, steps: 8);
        var output = Path.Combine(factory.DataDir, "jobs", job.Id.ToString(), "output");
        await WaitAsync(job.Id, j => Directory.Exists(Path.Combine(output, "checkpoint-4")), seconds: 60);

        await factory.StopHostAsync();   // the host goes away mid-run; its trainer is stopped
        await factory.StartHostAsync();  // and comes back under the same name
        var done = await WaitAsync(job.Id, j => JobStates.IsTerminal(j.State), seconds: 60);

        Assert.Equal(JobStates.Succeeded, done.State);
        // The stopping host reports its run interrupted (requeued: attempt 2); if placement leased attempt 2 to the
        // old registration before the host came back, re-registering requeues it once more (attempt 3). Either way
        // it resumed from the checkpoint below, never from scratch.
        Assert.InRange(done.Attempt, 2, 3);
        var config = await File.ReadAllTextAsync(Path.Combine(factory.DataDir, "jobs", job.Id.ToString(), "config.json"));
        Assert.Matches("\"resume_from_checkpoint\": \".*checkpoint-(4|6)\"", config);
        var events = (await _client.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events"))!;
        Assert.Contains(events, e => e.ToState == JobStates.Queued && (e.Reason.Contains("restarted") || e.Reason.Contains("shut down")));
        var metrics = await _client.ListAsync<MetricDto>($"/v1/jobs/{job.Id}/metrics");
        Assert.Equal(Enumerable.Range(1, 8), metrics!.Select(m => m.Step));
    }

    [Fact]
    public async Task Health_WithSchedulerRunning_IsHealthy()
    {
        var response = await factory.Client(null).GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"hosts_online\":1", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Hub_SubscribeToAnotherTenantsJob_IsRefused()
    {
        var job = await SubmitAsync(seed: 42, steps: 2);
        var (_, otherKey) = await factory.TenantAsync();
        _key = otherKey;
        await using var hub = await HubAsync();
        await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync(ProgressHubNames.SubscribeJob, job.Id));
    }
}
