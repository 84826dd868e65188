using System.Collections.Concurrent;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Runs;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// Executes the runs leased to this host (listed in a heartbeat's answer): asks the API to start each
/// (refused for a stale or duplicate lease, which then does nothing), writes the run file (config.json), launches the
/// trainer CLI as a child process, spools trainer_log.jsonl records and the outcome for the API.
/// A trainer killed by a signal it did not get from us resumes from its newest checkpoint, at most
/// <see cref="HostOptions.MaxTrainerRestarts"/> times; one that outlived its lease (this host was frozen)
/// is not restarted: the run is reported interrupted and goes back to the queue. A cancel (the heartbeat's
/// stop list, or a stale-attempt refusal) stops the child's process group; host shutdown stops it and
/// reports it interrupted, so it is requeued at once. A pause (the heartbeat's pause list) asks the trainer to
/// checkpoint and exit (<see cref="PauseProtocol"/>); the run is reported paused and not restarted.
/// </summary>
public sealed class RunExecutor(HostOptions options, HostApiClient api, ReportSpool spool, TextWriter log)
{
    private sealed record Run(int Attempt, CancellationTokenSource Stop)
    {
        private readonly object _gate = new();
        private bool _pauseRequested;
        private string? _pauseFile;

        public bool PauseRequested { get { lock (_gate) return _pauseRequested; } }

        /// <summary>Asks for a pause: the trainer sees the file after its current step (now, or as soon as one is started).</summary>
        public void RequestPause()
        {
            lock (_gate)
            {
                _pauseRequested = true;
                if (_pauseFile != null) File.WriteAllText(_pauseFile, "");
            }
        }

        /// <summary>The pause file of the trainer about to start: a fresh one, created at once when a pause is already asked for.</summary>
        public void UsePauseFile(string path)
        {
            lock (_gate)
            {
                _pauseFile = path;
                File.Delete(PauseProtocol.DoneMarker(path));
                if (_pauseRequested) File.WriteAllText(path, ""); else File.Delete(path);
            }
        }
    }
    private readonly ConcurrentDictionary<Guid, Run> _running = new();
    private readonly ConcurrentDictionary<Guid, Task> _tasks = new();
    private readonly ArtifactCache _cache = new(options.StateDir, options.CacheMaxBytes);

    /// <summary>The lease the trainers' supervisors watch (set once registered).</summary>
    public TrainerProcess.Lease? Lease { get; set; }

    public IReadOnlyList<RunningRun> Running => _running.Select(kv => new RunningRun(kv.Key, kv.Value.Attempt)).ToList();

    /// <summary>Stops a run this host executes (cancelled, or no longer assigned here); only that attempt when given.</summary>
    public void Stop(Guid jobId, int? attempt = null)
    {
        if (_running.TryGetValue(jobId, out var run) && (attempt == null || attempt == run.Attempt)) run.Stop.Cancel();
    }

    /// <summary>Asks a run this host executes to checkpoint and stop (paused by its tenant). Safe to repeat.</summary>
    public void Pause(Guid jobId)
    {
        if (_running.TryGetValue(jobId, out var run)) run.RequestPause();
    }

    public void StopAll()
    {
        foreach (var run in _running.Values) run.Stop.Cancel();
    }

    /// <summary>Starts attempt <paramref name="attempt"/> of a leased run unless this host already runs that job.</summary>
    public void Start(int hostId, Guid jobId, int attempt, CancellationToken shutdown)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        if (!_running.TryAdd(jobId, new Run(attempt, stop))) { stop.Dispose(); return; }
        var leased = _running[jobId];
        _tasks[jobId] = Task.Run(async () =>
        {
            try { await ExecuteAsync(hostId, jobId, leased, shutdown); }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { } // stopped before it started
            catch (Exception e) { log.WriteLine($"run {jobId} attempt {attempt}: {e.Message}"); }
            finally
            {
                _running.TryRemove(jobId, out _);
                _tasks.TryRemove(jobId, out _);
                stop.Dispose();
            }
        }, CancellationToken.None);
    }

    /// <summary>Waits for every run task to end (after <see cref="StopAll"/>).</summary>
    public Task WhenAllEndedAsync() => Task.WhenAll(_tasks.Values);

    private async Task ExecuteAsync(int host, Guid jobId, Run leased, CancellationToken shutdown)
    {
        var (attempt, stop) = (leased.Attempt, leased.Stop);
        StartRunResponse? run;
        try { run = await api.StartRunAsync(host, jobId, attempt, stop.Token); }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !stop.IsCancellationRequested)
        {
            log.WriteLine($"run {jobId} attempt {attempt}: could not start it ({e.Message}); the next heartbeat offers it again");
            return;
        }
        if (run == null)
        {
            log.WriteLine($"run {jobId} attempt {attempt}: not this host's to start (cancelled, requeued or already running); skipped");
            return;
        }
        var remote = run.Inputs != null;
        if (remote)
        {
            // A host with its own disk: the inputs come into the local cache, the run continues on local paths.
            try { run = await RemoteRunFiles.PrepareAsync(options.StateDir, _cache, (sha, file, ct) => api.DownloadInputAsync(host, run.JobId, run.Attempt, sha, file, ct), run, stop.Token); }
            catch (Exception e) when (e is HttpRequestException or IOException or InvalidDataException || e is TaskCanceledException && !stop.IsCancellationRequested)
            {
                log.WriteLine($"run {jobId} attempt {attempt}: could not fetch its inputs: {e.Message}");
                spool.Add(new SpooledReport(host, jobId, attempt, null, new FinishRunRequest(attempt, RunOutcomes.Interrupted, null, $"the host could not fetch the run's inputs: {e.Message}")));
                return;
            }
        }
        Directory.CreateDirectory(run.OutputDir);
        var uploader = remote ? new OutputUploader(api, host, run.JobId, run.Attempt, run.OutputDir, log) : null;
        var tailer = new TrainerLogTailer(Path.Combine(run.OutputDir, "trainer_log.jsonl"), (records, _) =>
        {
            spool.Add(new SpooledReport(host, run.JobId, run.Attempt, new RunMetricsRequest(run.Attempt, records), null));
            return Task.CompletedTask;
        }, options.LogPollInterval, log);
        using var tailing = new CancellationTokenSource();
        var tail = tailer.RunAsync(tailing.Token);
        var uploading = uploader?.RunAsync(options.UploadPollInterval, () => leased.Stop.Cancel(), tailing.Token) ?? Task.CompletedTask;
        FinishRunRequest finish;
        try { finish = await SuperviseAsync(run, leased, shutdown); }
        finally
        {
            await tailing.CancelAsync();
            await tail;
            await uploading;
            await tailer.PollAsync(CancellationToken.None); // the last lines written before exit
        }
        if (uploader != null) finish = await UploadAsync(uploader, finish, stop.Token);
        log.WriteLine($"run {run.JobId} attempt {run.Attempt}: {finish.Outcome}" + (finish.Error != null ? $": {finish.Error}" : "") + $" ({tailer.Sent} log records spooled)");
        spool.Add(new SpooledReport(host, run.JobId, run.Attempt, null, finish));
    }

    /// <summary>A remote run is succeeded (or paused) only once the API holds its output (or its checkpoint): uploads
    /// what that outcome needs, retrying transient failures until the run is stopped. A fenced-off attempt is interrupted.</summary>
    private async Task<FinishRunRequest> UploadAsync(OutputUploader uploader, FinishRunRequest finish, CancellationToken stop)
    {
        if (finish.Outcome is not (RunOutcomes.Succeeded or RunOutcomes.Paused)) return finish;
        for (int tries = 1; ; tries++)
        {
            try
            {
                if (finish.Outcome == RunOutcomes.Succeeded) await uploader.FinalAsync(stop); else await uploader.CheckpointsAsync(stop);
                return finish;
            }
            catch (StaleAttemptException e) { return new(finish.Attempt, RunOutcomes.Interrupted, finish.ExitCode, $"the API refused the upload: {e.Message}"); }
            catch (InvalidDataException e) { return new(finish.Attempt, RunOutcomes.Failed, finish.ExitCode, $"the API refused an output file: {e.Message}"); }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return new(finish.Attempt, RunOutcomes.Interrupted, finish.ExitCode, "stopped before its output was uploaded");
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
            {
                if (tries >= options.MaxUploadTries) return new(finish.Attempt, RunOutcomes.Failed, finish.ExitCode, $"the output could not be uploaded ({tries} tries): {e.Message}");
                log.WriteLine($"attempt {finish.Attempt}: upload failed ({e.Message}); retrying");
                try { await Task.Delay(TimeSpan.FromSeconds(2), stop); } catch (OperationCanceledException) { }
            }
        }
    }

    /// <summary>Runs the trainer to an outcome, restarting it from its newest checkpoint when it was killed.</summary>
    private async Task<FinishRunRequest> SuperviseAsync(StartRunResponse run, Run leased, CancellationToken shutdown)
    {
        var stop = leased.Stop;
        string? lastError = null;
        var fence = Path.Combine(run.RunDir, "attempt.fence");
        var pauseFile = Path.Combine(run.RunDir, $"attempt-{run.Attempt}.pause");
        for (int restarts = 0; ; restarts++)
        {
            // The attempt claims the run's directory once; a restart within it only checks it still holds it.
            try { if (restarts == 0) RunFence.Claim(fence, run.Attempt); else new RunFence(fence, run.Attempt).Check(); }
            catch (SupersededException e) { return new(run.Attempt, RunOutcomes.Interrupted, null, e.Message); }
            // Paused before (or between) trainers: nothing more to train in this attempt; its newest checkpoint is where it resumes.
            if (leased.PauseRequested)
                return new(run.Attempt, RunOutcomes.Paused, null, RunConfig.NewestCheckpoint(run.OutputDir) is { } cp ? $"at {Path.GetFileName(cp)}" : "before its first checkpoint");
            var resume = RunConfig.NewestCheckpoint(run.OutputDir);
            var config = RunConfig.Write(run, resume);
            var marker = Path.Combine(run.RunDir, $"attempt-{run.Attempt}.lease-expired");
            File.Delete(marker);
            leased.UsePauseFile(pauseFile);
            log.WriteLine($"run {run.JobId} attempt {run.Attempt}: starting {string.Join(' ', options.TrainerCommand)} train {config}" + (resume != null ? $" (resuming from {Path.GetFileName(resume)})" : ""));
            TrainerProcess trainer;
            try
            {
                trainer = await TrainerProcess.StartAsync(options.TrainerCommand, ["train", config], run.RunDir,
                    Path.Combine(run.RunDir, $"attempt-{run.Attempt}.log"), new Dictionary<string, string>
                    {
                        ["LONGSEQ_JOB_ID"] = run.JobId.ToString(), [PauseProtocol.FileVariable] = pauseFile, [RunFence.FileVariable] = fence,
                        [RunFence.AttemptVariable] = run.Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    },
                    Lease is { } l ? l with { ExpiredMarker = marker } : null);
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or FileNotFoundException or DirectoryNotFoundException)
            {
                return new(run.Attempt, RunOutcomes.Failed, -1, $"could not start the trainer ({string.Join(' ', options.TrainerCommand)}): {e.Message}");
            }
            using (trainer)
            {
                int exit;
                try { exit = await trainer.WaitAsync(stop.Token); }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    await trainer.StopAsync(options.KillGrace);
                    return shutdown.IsCancellationRequested
                        ? new(run.Attempt, RunOutcomes.Interrupted, null, "the trainer host shut down")
                        : new(run.Attempt, RunOutcomes.Cancelled, null, null);
                }
                if (exit == 0) return new(run.Attempt, RunOutcomes.Succeeded, 0, null);
                if (exit == RunFence.ExitCode) return new(run.Attempt, RunOutcomes.Interrupted, exit, trainer.LastErrorLine);
                if (exit == PauseProtocol.ExitCode && File.Exists(PauseProtocol.DoneMarker(pauseFile)))
                    return new(run.Attempt, RunOutcomes.Paused, exit, $"at checkpoint-{File.ReadAllText(PauseProtocol.DoneMarker(pauseFile)).Trim()}");
                if (File.Exists(marker))
                    return new(run.Attempt, RunOutcomes.Interrupted, exit, File.ReadAllText(marker).Trim());
                // A world across hosts that lost one of them: this attempt is gone, not the job (requeued, it resumes).
                if (Parallel.Mpi.MpiJob.SaysHostLost(trainer.LastErrorLine))
                    return new(run.Attempt, RunOutcomes.Interrupted, exit, trainer.LastErrorLine, Parallel.Mpi.MpiJob.LostHostName(trainer.LastErrorLine));
                lastError = trainer.LastErrorLine ?? lastError;
                bool killed = exit > 128; // a signal: 128 + its number (an OOM kill, an operator's kill -9)
                if (!killed || restarts >= options.MaxTrainerRestarts)
                    return new(run.Attempt, RunOutcomes.Failed, exit, lastError ?? (killed
                        ? $"the trainer was killed by signal {exit - 128} ({restarts + 1} times)"
                        : $"the trainer exited with code {exit}"));
                log.WriteLine($"run {run.JobId} attempt {run.Attempt}: the trainer was killed by signal {exit - 128}; restarting it from its newest checkpoint ({restarts + 1} of {options.MaxTrainerRestarts})");
            }
        }
    }
}
