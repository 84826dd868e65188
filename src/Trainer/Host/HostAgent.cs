using LongSeqService.Shared.Hosts;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// The trainer host process: registers its slots (retrying until the API answers), heartbeats, and does
/// what each answer says — in this order: if it was declared lost, stop every trainer; stop the runs
/// listed to stop; start the runs leased to it. It holds no database credential: runs reach it only
/// through these answers. A lease thread touches the lease file every second; the trainers' supervisors
/// kill a trainer whose host stopped touching it (see <see cref="TrainerProcess"/>). Reports (metrics, the
/// end of a run) go through the on-disk <see cref="ReportSpool"/>, so none is lost while the API is away.
/// </summary>
public sealed class HostAgent : IAsyncDisposable
{
    private readonly HostOptions _options;
    private readonly TextWriter _log;
    private readonly HostApiClient _api;
    private readonly RunExecutor _executor;
    private readonly ReportSpool _spool;
    private readonly CancellationTokenSource _stopped = new();
    private readonly CancellationTokenSource _shutdown = new();
    private Task? _spooling;
    private Thread? _leaseThread;
    private RegisterHostResponse? _registration;
    private HashSet<RunningRun> _joined = [];

    public HostAgent(HostOptions options, TextWriter log, HttpMessageHandler? apiHandler = null)
    {
        _options = options;
        _log = TextWriter.Synchronized(log);
        _api = new HostApiClient(options.Api, options.Token, apiHandler);
        _spool = new ReportSpool(Path.Combine(options.StateDir, "spool"), _api, r => _executor!.Stop(r.JobId, r.Attempt), _log);
        _executor = new RunExecutor(options, _api, _spool, _log);
    }

    public int? HostId => _registration?.HostId;
    public IReadOnlyList<RunningRun> Running => _executor.Running;
    public int PendingReports => _spool.Pending;
    private string LeaseFile => Path.Combine(_options.StateDir, "host.lease");

    public async Task RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(_options.StateDir);
        using var shutdown = ct.Register(() => _shutdown.Cancel());
        StartLeaseThread();
        _spooling = _spool.RunAsync(_stopped.Token);
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
                if (answer.Lost)
                {
                    _log.WriteLine("the API declared this host lost (it was silent too long); its runs were requeued: stopping every trainer");
                    _executor.StopAll();
                }
                foreach (var jobId in answer.Stop)
                {
                    _log.WriteLine($"run {jobId}: stop requested by the API");
                    _executor.Stop(jobId);
                }
                foreach (var jobId in answer.Pause ?? [])
                {
                    _log.WriteLine($"run {jobId}: pause requested by the API");
                    _executor.Pause(jobId);
                }
                foreach (var run in answer.Start) _executor.Start(_registration.HostId, run.JobId, run.Attempt, _shutdown.Token);
                var joined = (answer.Joined ?? []).ToHashSet();
                foreach (var run in joined.Except(_joined))
                    _log.WriteLine($"run {run.JobId} attempt {run.Attempt}: holds slots here in a world that spans hosts; another host's mpiexec starts its ranks here");
                foreach (var run in _joined.Except(joined)) _log.WriteLine($"run {run.JobId} attempt {run.Attempt}: no longer holds slots here");
                _joined = joined;
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
                _registration = await _api.RegisterAsync(new RegisterHostRequest(_options.Name, slots, _options.Artifacts, _options.MpiHost), ct);
                break;
            }
            catch (HttpRequestException e) when (!ct.IsCancellationRequested && e.StatusCode is not System.Net.HttpStatusCode.Forbidden)
            {
                if (attempt % 5 == 0) _log.WriteLine($"registering with {_options.Api} failed ({e.Message}); retrying");
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
            }
        }
        _executor.Lease = new TrainerProcess.Lease(LeaseFile, _registration.LeaseSeconds, "");
        _log.WriteLine($"host '{_options.Name}' registered as host {_registration.HostId} with {_options.Slots} {_options.Device} slot(s) ({_options.Artifacts} artifacts{(_options.MpiHost != null ? $", joins spanning worlds as '{_options.MpiHost}'" : "")}); trainers hold a {_registration.LeaseSeconds} s lease");
    }

    /// <summary>A plain thread, not the thread pool: the lease says "this process runs", nothing more.</summary>
    private void StartLeaseThread()
    {
        Touch();
        _leaseThread = new Thread(() =>
        {
            while (!_stopped.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(1))) Touch();
        }) { IsBackground = true, Name = "host-lease" };
        _leaseThread.Start();
    }

    private void Touch()
    {
        try
        {
            if (!File.Exists(LeaseFile)) File.WriteAllText(LeaseFile, "");
            File.SetLastWriteTimeUtc(LeaseFile, DateTime.UtcNow);
        }
        catch (IOException e) { _log.WriteLine($"lease file: {e.Message}"); }
    }

    /// <summary>Stops the trainers (each run is spooled as interrupted), gives the spool a moment to deliver, then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        await _shutdown.CancelAsync();
        await _executor.WhenAllEndedAsync();
        await _stopped.CancelAsync();
        if (_spooling != null) await _spooling;
        using (var flush = new CancellationTokenSource(_options.ShutdownFlush))
            try { await _spool.DrainAsync(flush.Token); } catch (OperationCanceledException) { }
        _api.Dispose();
    }
}
