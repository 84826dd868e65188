using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Microsoft.EntityFrameworkCore;
using LongSeqService.Shared.Jobs;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace LongSeqService.Service.Tests;

/// <summary>
/// The Api against a fresh PostgreSQL database (one per test class, on the server scripts/test.sh
/// starts: LONGSEQ_TEST_PG) and a fresh data directory. By default the scheduler's Hangfire server is
/// off, so tests run placement and liveness passes themselves; <see cref="WithScheduler"/> turns it on.
/// </summary>
public class ServiceFactory : WebApplicationFactory<Program>, IAsyncLifetime
{
    public const string AdminKey = "lsk_test_admin_key_0123456789";
    public const string HostKey = "lsk_test_host_key_0123456789";
    public string Database { get; } = $"lstest_{Guid.NewGuid():N}"[..24];
    public string DataDir { get; } = Directory.CreateTempSubdirectory("longseq-test-").FullName;
    public string ConnectionString => $"{ServerConnection};Database={Database}";
    protected virtual bool WithScheduler => false;
    protected virtual long MaxUploadBytes => 256L << 20;

    public static string ServerConnection => Environment.GetEnvironmentVariable("LONGSEQ_TEST_PG")
        ?? throw new InvalidOperationException("LONGSEQ_TEST_PG is not set: run the tests with scripts/test.sh (it starts PostgreSQL)");

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ConnectionStrings:Db", ConnectionString);
        builder.UseSetting("Scheduler:RunServer", WithScheduler ? "true" : "false");
        builder.UseSetting("Scheduler:RecurringJobs", "false");
        builder.UseSetting("Scheduler:HeartbeatSeconds", "1");
        builder.UseSetting("Scheduler:LivenessGraceSeconds", "0"); // tests run liveness sweeps by hand, no gap to forgive
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        builder.ConfigureServices(s => s.PostConfigure<LongSeqOptions>(o =>
        {
            o.DataDir = DataDir;
            o.BootstrapApiKey = AdminKey;
            o.BootstrapHostKey = HostKey;
            o.MaxUploadBytes = MaxUploadBytes;
        }));
    }

    public async Task InitializeAsync()
    {
        // Build the host: runs the migrations into the fresh database and seeds the keys.
        _ = Server;
        await Task.CompletedTask;
    }

    protected virtual Task BeforeDisposeAsync() => Task.CompletedTask;

    async Task IAsyncLifetime.DisposeAsync()
    {
        await BeforeDisposeAsync();
        await DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await using var conn = new NpgsqlConnection(ServerConnection + ";Database=postgres");
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Database} WITH (FORCE)", conn);
        await cmd.ExecuteNonQueryAsync();
        try { Directory.Delete(DataDir, recursive: true); } catch (IOException) { }
    }

    /// <summary>A SignalR connection to the progress hub through the test server (long polling), as <paramref name="key"/>; not started.</summary>
    public HubConnection Hub(string key) => new HubConnectionBuilder()
        .WithUrl(new Uri(Server.BaseAddress, "hubs/progress"), o =>
        {
            o.HttpMessageHandlerFactory = _ => Server.CreateHandler();
            o.Transports = HttpTransportType.LongPolling;
            o.AccessTokenProvider = () => Task.FromResult<string?>(key);
        })
        .AddJsonProtocol(o => WireJson.Configure(o.PayloadSerializerOptions))
        .Build();

    public HttpClient Client(string? key)
    {
        var client = CreateClient();
        if (key != null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public HttpClient Admin() => Client(AdminKey);

    /// <summary>A new tenant with its own key; returns a client that uses it.</summary>
    public async Task<(HttpClient Client, string Key)> TenantAsync(string? name = null)
    {
        var response = await Admin().PostAsJsonAsync("/v1/keys", new CreateKeyRequest(name ?? $"t-{Guid.NewGuid():N}", null, null), WireJson.Options);
        response.EnsureSuccessStatusCode();
        var key = (await response.Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
        return (Client(key), key);
    }

    private readonly Dictionary<string, string> _hostKeys = [];

    /// <summary>The host key of host <paramref name="name"/>: a host key is one host, so each name gets its own
    /// (minted by the admin on first use, kept for re-registration).</summary>
    public async Task<string> HostKeyFor(string name)
    {
        lock (_hostKeys) if (_hostKeys.TryGetValue(name, out var known)) return known;
        var response = await Admin().PostAsJsonAsync("/v1/keys", new CreateKeyRequest("hosts", KeyRoles.Host, name), WireJson.Options);
        response.EnsureSuccessStatusCode();
        var key = (await response.Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
        lock (_hostKeys) _hostKeys[name] = key;
        return key;
    }

    public async Task<RegisterHostResponse> RegisterHostAsync(string name, int slots, long? slotMemoryBytes = null, string? artifacts = null, string? mpiHost = null)
    {
        var response = await Client(await HostKeyFor(name)).PostAsJsonAsync("/v1/hosts/register",
            new RegisterHostRequest(name, Enumerable.Range(0, slots).Select(_ => new SlotSpec("cpu", slotMemoryBytes)).ToList(), artifacts, mpiHost), WireJson.Options);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<RegisterHostResponse>(WireJson.Options))!;
    }

    public static async Task<DatasetDto> UploadAsync(HttpClient client, string file)
    {
        var response = await client.PostAsync("/v1/datasets", Forms.File(file));
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<DatasetDto>(WireJson.Options))!;
    }

    /// <summary>A scope with the service's DbContext and services, for arranging and asserting.</summary>
    public AsyncServiceScope Scope() => Services.CreateAsyncScope();
    public ServiceDb Db(AsyncServiceScope scope) => scope.ServiceProvider.GetRequiredService<ServiceDb>();

    /// <summary>For placement tests sharing one database: an empty queue (every live job cancelled), every slot free and
    /// every host lost, so hosts take nothing unless a test registers them.</summary>
    public async Task EmptyQueueAndHostsAsync()
    {
        await using var scope = Scope();
        var db = Db(scope);
        await db.Jobs.Where(j => !JobStates.Terminal.Contains(j.State)).ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Cancelled));
        await db.HostSlots.ExecuteUpdateAsync(s => s.SetProperty(x => x.JobId, (Guid?)null));
        await db.Hosts.ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost));
    }
}

/// <summary>The same, with the scheduler's Hangfire server running (placement happens by itself).</summary>
public class SchedulerServiceFactory : ServiceFactory
{
    protected override bool WithScheduler => true;
}

public static class Forms
{
    public static MultipartFormDataContent File(string path, string? formatting = null) => Bytes(System.IO.File.ReadAllBytes(path), Path.GetFileName(path), formatting);

    public static MultipartFormDataContent Bytes(byte[] bytes, string fileName, string? formatting = null)
    {
        var form = new MultipartFormDataContent { { new ByteArrayContent(bytes), "file", fileName } };
        if (formatting != null) form.Add(new StringContent(formatting), "formatting");
        return form;
    }
}

public static class Data
{
    /// <summary>LLaMA-Factory's demo datasets, copied into the repository's data/ folder.</summary>
    public static readonly string Dir = FindDir();
    public static string File(string name) => Path.Combine(Dir, name);

    private static string FindDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (System.IO.File.Exists(Path.Combine(d.FullName, "LongSeqService.sln"))) return Path.Combine(d.FullName, "data");
        throw new DirectoryNotFoundException("LongSeqService.sln not found above " + AppContext.BaseDirectory);
    }
}
