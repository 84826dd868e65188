using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Npgsql;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>
/// The whole system as real processes, the way scripts/run.sh starts it: the API (with the scheduler)
/// and a trainer host, from the solution's Release build, against a fresh database on the PostgreSQL
/// server that scripts/test.sh starts (LONGSEQ_TEST_PG), with a fresh data directory.
/// </summary>
public class SystemUnderTest : IAsyncLifetime
{
    public static readonly string Root = FindRoot();
    public static string Bin(string project) => Path.Combine(Root, "src", project, "bin", "Release", "net10.0", "linux-x64");

    /// <summary>Uploads one of the repository's data/ files as a dataset (201 asserted); returns the dataset as the API answered it.</summary>
    public static async Task<System.Text.Json.Nodes.JsonObject> UploadDatasetAsync(HttpClient api, string file)
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StreamContent(File.OpenRead(Path.Combine(Root, "data", file))), "file", file);
        var response = await api.PostAsync("/v1/datasets", form);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
    }

    /// <summary>The id of <see cref="UploadDatasetAsync"/>'s dataset.</summary>
    public static async Task<string> UploadDatasetIdAsync(HttpClient api, string file) =>
        (await UploadDatasetAsync(api, file))["id"]!.GetValue<string>();

    public string DataDir { get; } = Directory.CreateTempSubdirectory("longseq-e2e-").FullName;
    public string AdminKey { get; } = "lsk_e2e_admin_" + Guid.NewGuid().ToString("N");
    public string HostKey { get; } = "lsk_e2e_host_" + Guid.NewGuid().ToString("N");
    public int Port { get; } = FreePort();
    public Uri BaseUrl => new($"http://127.0.0.1:{Port}");
    public string HostName { get; } = "e2e-host-" + Guid.NewGuid().ToString("N")[..8];
    public int Slots { get; init; } = 4;
    /// <summary>Extra settings for the API (e.g. Scheduler__HostTimeoutSeconds).</summary>
    public Dictionary<string, string> ApiEnvironment { get; init; } = [];
    /// <summary>The trainer the hosts launch (default: the real trainer CLI).</summary>
    public string? TrainerCommand { get; init; }
    public Process? HostProcess => _host;
    /// <summary>False: no host is started with the API (a test starts its own, e.g. in network namespaces).</summary>
    public bool StartsHost { get; init; } = true;

    private readonly string _database = "e2e_" + Guid.NewGuid().ToString("N")[..12];
    private string _db = "";
    private Process? _api, _host;
    private readonly List<string> _logs = [];

    /// <summary>The PostgreSQL server the API's database is made on (the one scripts/test.sh starts).</summary>
    protected virtual Task<string> ServerAsync() => Task.FromResult(Environment.GetEnvironmentVariable("LONGSEQ_TEST_PG")
        ?? throw new InvalidOperationException("LONGSEQ_TEST_PG is not set: run the tests with scripts/test.sh (it starts PostgreSQL)"));

    private string _server = "";

    /// <summary>Runs one SQL statement on this system's database (to set up a state no public call makes quickly).</summary>
    public async Task ExecuteSqlAsync(string sql)
    {
        await using var conn = new NpgsqlConnection(_db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task InitializeAsync()
    {
        var server = _server = await ServerAsync();
        await using (var conn = new NpgsqlConnection(server + ";Database=postgres"))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {_database}", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        _db = server + $";Database={_database}";
        await StartApiAsync();
        if (!StartsHost) return;
        StartHost();
        // The system is up when its host has registered: a job submitted before that is refused (no host).
        using var admin = Client();
        for (var deadline = DateTime.UtcNow.AddSeconds(120); !(await admin.GetStringAsync("/v1/hosts")).Contains(HostName, StringComparison.Ordinal); await Task.Delay(200))
            if (DateTime.UtcNow > deadline || _host!.HasExited) throw new InvalidOperationException("the trainer host did not register:\n" + Logs());
    }

    /// <summary>Starts the API (again, after <see cref="KillApi"/>: same port, same database) and waits for /health.</summary>
    public async Task StartApiAsync()
    {
        _api = Start("api", "dotnet", [Path.Combine(Bin("Api"), "LongSeqService.Api.dll")], new(ApiEnvironment)
        {
            ["ASPNETCORE_URLS"] = BaseUrl.ToString().TrimEnd('/'), ["ASPNETCORE_CONTENTROOT"] = Bin("Api"),
            ["LONGSEQ_DB"] = _db, ["LONGSEQ_BOOTSTRAP_API_KEY"] = AdminKey, ["LONGSEQ_BOOTSTRAP_HOST_KEY"] = HostKey,
        });
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(120);      // a loaded 2-core machine has taken over 60 s
        while (true)
        {
            try { if ((await http.GetAsync(new Uri(BaseUrl, "/health"))).StatusCode == HttpStatusCode.OK) break; }
            catch (HttpRequestException) { }
            if (_api.HasExited || DateTime.UtcNow > deadline) throw new InvalidOperationException("the API did not start:\n" + Logs());
            await Task.Delay(250);
        }
    }

    /// <summary>SIGKILL of the API (with its scheduler): no chance to clean up.</summary>
    public void KillApi()
    {
        _api?.Kill(entireProcessTree: false);
        _api?.WaitForExit();
    }

    /// <summary>Starts the trainer host (again, after <see cref="KillHost"/>: same name, so it takes its place).</summary>
    public void StartHost() => _host = StartHost(HostName, HostKey, Slots);

    /// <summary>A trainer host process as run.sh starts one: its key from a file, no database connection, no admin key.</summary>
    public Process StartHost(string name, string key, int slots)
    {
        var keyFile = Path.Combine(DataDir, $"{name}.key");
        File.WriteAllText(keyFile, key);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var env = new Dictionary<string, string>();
        if (TrainerCommand != null) env["LONGSEQ_TRAINER_COMMAND"] = TrainerCommand;
        var host = Start(name, "dotnet", [Path.Combine(Bin("Trainer"), "trainer.dll"), "host", "--api", BaseUrl.ToString().TrimEnd('/'),
            "--token-file", keyFile, "--slots", slots.ToString(), "--name", name], env);
        lock (_hosts) _hosts.Add(host);
        return host;
    }

    private readonly List<Process> _hosts = [];

    /// <summary>SIGKILL, as a crashed machine would: no chance to clean up.</summary>
    public void KillHost()
    {
        _host?.Kill(entireProcessTree: false);
        _host?.WaitForExit();
    }

    public HttpClient Client(string? key = null)
    {
        var c = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key ?? AdminKey);
        return c;
    }

    public string Logs() { lock (_logs) return string.Join("\n", _logs.TakeLast(80)); }

    /// <summary>A host process of the test's own making (killed with the system); <paramref name="sharedDataDir"/> false: it is
    /// not told the API's data directory, and runs in <paramref name="workDir"/>.</summary>
    public Process StartHostProcess(string name, string[] argv, Dictionary<string, string> env, string workDir, bool sharedDataDir)
    {
        var host = Start(name, argv[0], argv[1..], env, workDir, sharedDataDir);
        lock (_hosts) _hosts.Add(host);
        return host;
    }

    private Process Start(string name, string file, string[] args, Dictionary<string, string> env, string? workDir = null, bool sharedDataDir = true)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir ?? "" };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var secret in new[] { "LONGSEQ_DB", "LONGSEQ_BOOTSTRAP_API_KEY", "LONGSEQ_BOOTSTRAP_HOST_KEY", "LONGSEQ_HOST_KEY" }) psi.Environment.Remove(secret);
        if (sharedDataDir) psi.Environment["LONGSEQ_DATA_DIR"] = DataDir; else psi.Environment.Remove("LONGSEQ_DATA_DIR");
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        void Log(string? line) { if (line != null) lock (_logs) _logs.Add($"[{name}] {line}"); }
        p.OutputDataReceived += (_, e) => Log(e.Data);
        p.ErrorDataReceived += (_, e) => Log(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    public virtual async Task DisposeAsync()
    {
        List<Process> hosts;
        lock (_hosts) hosts = [.. _hosts];
        foreach (var p in hosts.Append(_api))
        {
            if (p is null || p.HasExited) continue;
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
        NpgsqlConnection.ClearAllPools();
        try
        {
            await using var conn = new NpgsqlConnection(_server + ";Database=postgres");
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException) { }
        try { Directory.Delete(DataDir, true); } catch (IOException) { }
    }

    protected static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "LongSeqService.sln"))) return d.FullName;
        throw new InvalidOperationException("LongSeqService.sln not found above " + AppContext.BaseDirectory);
    }
}
