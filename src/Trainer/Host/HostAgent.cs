using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Runs;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// The trainer host process: registers its slots (retrying until the API answers), serves its own
/// Hangfire queue (host-&lt;id&gt;) with one worker per slot, heartbeats, and stops the runs the API
/// lists in a heartbeat's answer. If the API forgets the host (404), it stops its runs and registers again.
/// </summary>
public sealed class HostAgent : IAsyncDisposable
{
    private readonly HostOptions _options;
    private readonly TextWriter _log;
    private readonly HostApiClient _api;
    private readonly RunExecutor _executor;
    private BackgroundJobServer? _server;
    private RegisterHostResponse? _registration;

    public HostAgent(HostOptions options, TextWriter log, HttpMessageHandler? apiHandler = null)
    {
        _options = options;
        _log = TextWriter.Synchronized(log);
        _api = new HostApiClient(options.Api, options.Token, apiHandler);
        _executor = new RunExecutor(options, _api, () => _registration?.HostId ?? throw new InvalidOperationException("not registered"), _log);
        GlobalConfiguration.Configuration.UseSimpleAssemblyNameTypeSerializer().UseRecommendedSerializerSettings();
    }

    public int? HostId => _registration?.HostId;
    public IReadOnlyList<RunningRun> Running => _executor.Running;

    public async Task RunAsync(CancellationToken ct)
    {
        await RegisterAsync(ct);
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromSeconds(_registration!.HeartbeatSeconds), ct);
            try
            {
                var answer = await _api.HeartbeatAsync(_registration.HostId, new HeartbeatRequest(_executor.Running), ct);
                if (answer == null)
                {
                    _log.WriteLine("the API does not know this host any more; stopping its runs and registering again");
                    _executor.StopAll();
                    await RegisterAsync(ct);
                    continue;
                }
                foreach (var jobId in answer.Stop)
                {
                    _log.WriteLine($"run {jobId}: stop requested by the API");
                    _executor.Stop(jobId);
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                _log.WriteLine($"heartbeat failed: {e.Message}");
            }
        }
    }

    private async Task RegisterAsync(CancellationToken ct)
    {
        var slots = Enumerable.Range(0, _options.Slots).Select(_ => new SlotSpec(_options.Device, _options.SlotMemoryBytes)).ToList();
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                var registration = await _api.RegisterAsync(new RegisterHostRequest(_options.Name, slots), ct);
                if (_server != null && registration.Queue != _registration?.Queue) { _server.Dispose(); _server = null; }
                _registration = registration;
                break;
            }
            catch (HttpRequestException e) when (!ct.IsCancellationRequested)
            {
                if (attempt % 5 == 0) _log.WriteLine($"registering with {_options.Api} failed ({e.Message}); retrying");
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
            }
        }
        var db = _options.Database ?? _registration.HangfireConnectionString
                 ?? throw new InvalidOperationException("no Hangfire database: pass --db (the API does not share its connection)");
        _server ??= StartServer(db, _registration.Queue);
        _log.WriteLine($"host '{_options.Name}' registered as host {_registration.HostId} with {_options.Slots} {_options.Device} slot(s); serving queue {_registration.Queue}");
    }

    private BackgroundJobServer StartServer(string db, string queue)
    {
        var storageOptions = new PostgreSqlStorageOptions { PrepareSchemaIfNecessary = false, QueuePollInterval = TimeSpan.FromSeconds(1) };
        var storage = new PostgreSqlStorage(new NpgsqlConnectionFactory(db, storageOptions), storageOptions);
        return new BackgroundJobServer(new BackgroundJobServerOptions
        {
            Queues = [queue],
            WorkerCount = Math.Max(1, _options.Slots),
            ServerName = $"{_options.Name}:{queue}:{Environment.ProcessId}",
            Activator = new ExecutorActivator(_executor),
            ShutdownTimeout = _options.KillGrace + TimeSpan.FromSeconds(10),
        }, storage);
    }

    public async ValueTask DisposeAsync()
    {
        _executor.StopAll();
        if (_server != null)
        {
            _server.SendStop();
            await Task.Run(() => _server.Dispose());
        }
        _api.Dispose();
    }

    /// <summary>Hangfire asks for an IRunExecutor; this host's executor answers.</summary>
    private sealed class ExecutorActivator(RunExecutor executor) : JobActivator
    {
        public override object ActivateJob(Type jobType) => jobType == typeof(IRunExecutor) || jobType == typeof(RunExecutor) ? executor : base.ActivateJob(jobType);
    }
}
