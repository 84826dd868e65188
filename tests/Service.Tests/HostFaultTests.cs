using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using LongSeqService.Trainer.Host;
using Microsoft.AspNetCore.Hosting;

namespace LongSeqService.Service.Tests;

/// <summary>The host flow with faults put in its way: the API's database connection runs through a
/// <see cref="TcpGate"/> that a test can close (the database "stops"), and the host's HTTP client through
/// an <see cref="ApiGate"/> (the API "stops", as far as the host can tell).</summary>
public sealed class HostFaultFixture : HostFlowFixture
{
    public TcpGate DatabaseGate { get; } = new(Environment.GetEnvironmentVariable("LONGSEQ_TEST_PG") is { } pg ? PortOf(pg) : 5432);
    public ApiGate Api { get; private set; } = null!;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        var gated = string.Join(';', ConnectionString.Split(';').Select(p => p.StartsWith("Port=", StringComparison.OrdinalIgnoreCase) ? $"Port={DatabaseGate.Port}" : p))
                    + ";Timeout=3;Command Timeout=10";
        builder.UseSetting("ConnectionStrings:Db", gated);
    }

    public Task StartGatedHostAsync()
    {
        Api = new ApiGate(Server.CreateHandler());
        return StartHostAsync(Api);
    }

    private static int PortOf(string conn) =>
        int.Parse(conn.Split(';').First(p => p.StartsWith("Port=", StringComparison.OrdinalIgnoreCase))[5..]);

    protected override async Task BeforeDisposeAsync()
    {
        DatabaseGate.Open = true;
        await base.BeforeDisposeAsync();
        DatabaseGate.Dispose();
    }
}

/// <summary>A TCP forwarder to PostgreSQL; closing it drops every connection and refuses new ones.</summary>
public sealed class TcpGate : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly List<TcpClient> _open = [];
    private volatile bool _isOpen = true;

    public TcpGate(int target)
    {
        _target = target;
        _listener.Start();
        _ = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public bool Open
    {
        get => _isOpen;
        set
        {
            _isOpen = value;
            if (!value) lock (_open) { foreach (var c in _open) c.Dispose(); _open.Clear(); }
        }
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(); } catch (Exception) { return; }
            if (!_isOpen) { client.Dispose(); continue; }
            _ = Task.Run(async () =>
            {
                using var upstream = new TcpClient();
                try
                {
                    await upstream.ConnectAsync(IPAddress.Loopback, _target);
                    lock (_open) { _open.Add(client); _open.Add(upstream); }
                    var a = client.GetStream().CopyToAsync(upstream.GetStream());
                    var b = upstream.GetStream().CopyToAsync(client.GetStream());
                    await Task.WhenAny(a, b);
                }
                catch (Exception) { }
                finally { client.Dispose(); }
            });
        }
    }

    public void Dispose() => _listener.Stop();
}

/// <summary>The host's way to the API: when closed, every call fails as a refused connection does.</summary>
public sealed class ApiGate(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    public volatile bool Open = true;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct) =>
        Open ? base.SendAsync(request, ct) : throw new HttpRequestException("Connection refused (the API is away)");
}

public sealed class HostFaultTests(HostFaultFixture factory) : IClassFixture<HostFaultFixture>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _dataset = null!;

    public async Task InitializeAsync()
    {
        await factory.StartGatedHostAsync();
        (_client, _) = await factory.TenantAsync();
        _dataset = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public async Task DisposeAsync()
    {
        factory.DatabaseGate.Open = true;
        factory.Api.Open = true;
        await factory.StopHostAsync();
    }

    private string RunDir(Guid job) => Path.Combine(factory.DataDir, "jobs", job.ToString());

    private async Task<Guid> SubmitAsync(int seed, int steps)
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = _dataset.Id, sequence_parallel_size = 2, max_steps = steps, seed });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
    }

    private async Task<JobDto> WaitAsync(Guid id, Func<JobDto, bool> until, int seconds = 60)
    {
        JobDto job = null!;
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            var response = await _client.GetAsync($"/v1/jobs/{id}");
            if (!response.IsSuccessStatusCode) continue; // 503 while the database is away
            job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
            if (until(job)) return job;
        }
        throw new TimeoutException($"job {id} is {job?.State}; events: {await _client.GetStringAsync($"/v1/jobs/{id}/events")}");
    }

    private static async Task WaitForFileAsync(string path, int seconds = 60)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); !File.Exists(path); await Task.Delay(100))
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no {path}");
    }

    private async Task<List<int>> StepsAsync(Guid job) =>
        (await _client.ListAsync<MetricDto>($"/v1/jobs/{job}/metrics"))!.Select(m => m.Step).ToList();

    [Fact]
    public async Task Trainer_KilledBySigkill_ResumesFromItsCheckpointAndSucceeds()
    {
        var job = await SubmitAsync(seed: 55, steps: 6);
        var done = await WaitAsync(job, j => JobStates.IsTerminal(j.State));

        Assert.Equal((JobStates.Succeeded, 1), (done.State, done.Attempt));
        Assert.Equal([1, 2, 3, 4, 5, 6], await StepsAsync(job));
        var run = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(RunDir(job), "config.json")))!;
        Assert.Contains("checkpoint-", (string?)run["resume_from_checkpoint"]);   // the restart resumed from its checkpoint
    }

    [Fact]
    public async Task Trainer_KilledEveryTime_FailsAfterTheRestartsWithItsOwnErrorLine()
    {
        var job = await SubmitAsync(seed: 56, steps: 6);
        var done = await WaitAsync(job, j => JobStates.IsTerminal(j.State));

        Assert.Equal(JobStates.Failed, done.State);
        Assert.Equal("error: rank 1 ran out of memory", done.Error); // not the progress line written after it
        Assert.Equal(3, File.ReadAllLines(Path.Combine(RunDir(job), "holders.log")).Count(l => l.StartsWith("start ")));
    }

    [Fact]
    public async Task Trainer_Environment_HoldsNoKeyNorDatabasePassword()
    {
        var secrets = new Dictionary<string, string>
        {
            ["LONGSEQ_HOST_KEY"] = "lsk_host_secret_1", ["LONGSEQ_BOOTSTRAP_API_KEY"] = "lsk_admin_secret_2",
            ["LONGSEQ_DB"] = "Host=db;Password=pg_secret_3", ["PGPASSWORD"] = "pg_secret_4",
        };
        foreach (var (k, v) in secrets) Environment.SetEnvironmentVariable(k, v);
        try
        {
            var job = await SubmitAsync(seed: 1, steps: 2);
            Assert.Equal(JobStates.Succeeded, (await WaitAsync(job, j => JobStates.IsTerminal(j.State))).State);
            var env = await File.ReadAllTextAsync(Path.Combine(RunDir(job), "env.txt"));
            Assert.All(secrets.Values, v => Assert.DoesNotContain(v, env));
            Assert.Contains("LONGSEQ_JOB_ID=" + job, env);
            Assert.Contains("PATH=", env);
        }
        finally { foreach (var k in secrets.Keys) Environment.SetEnvironmentVariable(k, null); }
    }

    [Fact]
    public async Task Supervisor_Killed_TakesTheTrainerAndItsChildWithIt()
    {
        var job = await SubmitAsync(seed: 99, steps: 6);
        await WaitForFileAsync(Path.Combine(RunDir(job), "grandchild.pid"));
        await Task.Delay(200);
        int trainer = int.Parse(File.ReadAllText(Path.Combine(RunDir(job), "trainer.pid")));
        int grandchild = int.Parse(File.ReadAllText(Path.Combine(RunDir(job), "grandchild.pid")));
        int supervisor = ParentOf(trainer);
        Assert.Contains("sh", File.ReadAllText($"/proc/{supervisor}/comm"));

        Assert.Equal(0, kill(supervisor, 9));
        for (int i = 0; i < 50 && (Alive(trainer) || Alive(grandchild)); i++) await Task.Delay(100);

        Assert.False(Alive(trainer), "the trainer outlived its supervisor");
        Assert.False(Alive(grandchild), "the trainer's child outlived the supervisor");
        await _client.PostAsync($"/v1/jobs/{job}/cancel", null); // it was restarted (and hangs again): stop it
        await WaitAsync(job, j => JobStates.IsTerminal(j.State), seconds: 30);
    }

    [Fact]
    public async Task Database_AwayLongerThanTheJobsTail_JobStillSucceedsAndReleasesItsSlots()
    {
        var job = await SubmitAsync(seed: 77, steps: 8);
        await WaitForFileAsync(Path.Combine(RunDir(job), "output", "checkpoint-2", "trainer_state.json"));

        factory.DatabaseGate.Open = false;
        await WaitForFileAsync(Path.Combine(RunDir(job), "output", "model.safetensors"));
        var during = await _client.GetAsync($"/v1/jobs/{job}");
        await Task.Delay(TimeSpan.FromSeconds(4)); // the host keeps its report in the spool, retrying
        Assert.True(factory.Agent!.PendingReports > 0, "the finish report should be waiting in the spool");
        factory.DatabaseGate.Open = true;
        var done = await WaitAsync(job, j => JobStates.IsTerminal(j.State), seconds: 60);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.Equal((JobStates.Succeeded, 1), (done.State, done.Attempt));
        Assert.Equal(Enumerable.Range(1, 8), await StepsAsync(job));
        var hosts = await _client.ListAsync<HostDto>("/v1/hosts");
        Assert.Equal(4, hosts!.Single(h => h.Name == HostFlowFixture.HostName).FreeSlots);
    }

    [Fact]
    public async Task Api_AwayWhileTheRunEnds_EveryLoggedStepReachesMetrics()
    {
        var job = await SubmitAsync(seed: 77, steps: 8);
        await WaitForFileAsync(Path.Combine(RunDir(job), "output", "checkpoint-2", "trainer_state.json"));

        factory.Api.Open = false;
        await WaitForFileAsync(Path.Combine(RunDir(job), "output", "model.safetensors"));
        await Task.Delay(TimeSpan.FromSeconds(2));
        factory.Api.Open = true;
        var done = await WaitAsync(job, j => JobStates.IsTerminal(j.State), seconds: 60);

        Assert.Equal((JobStates.Succeeded, 1), (done.State, done.Attempt));
        var logged = File.ReadAllLines(Path.Combine(RunDir(job), "output", "trainer_log.jsonl")).Length;
        Assert.Equal(Enumerable.Range(1, logged), await StepsAsync(job));
    }

    private static int ParentOf(int pid) => int.Parse(File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].Split(' ')[1]);

    private static bool Alive(int pid) =>
        File.Exists($"/proc/{pid}/stat") && File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1][0] != 'Z';

    [System.Runtime.InteropServices.DllImport("libc")] private static extern int kill(int pid, int sig);
}
