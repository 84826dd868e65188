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
/// reports it interrupted, so it is requeued at once.
/// </summary>
public sealed class RunExecutor(HostOptions options, HostApiClient api, ReportSpool spool, TextWriter log)
{
    private sealed record Run(int Attempt, CancellationTokenSource Stop);
    private readonly ConcurrentDictionary<Guid, Run> _running = new();
    private readonly ConcurrentDictionary<Guid, Task> _tasks = new();

    /// <summary>The lease the trainers' supervisors watch (set once registered).</summary>
    public TrainerProcess.Lease? Lease { get; set; }

    public IReadOnlyList<RunningRun> Running => _running.Select(kv => new RunningRun(kv.Key, kv.Value.Attempt)).ToList();

    /// <summary>Stops a run this host executes (cancelled, or no longer assigned here); only that attempt when given.</summary>
    public void Stop(Guid jobId, int? attempt = null)
    {
        if (_running.TryGetValue(jobId, out var run) && (attempt == null || attempt == run.Attempt)) run.Stop.Cancel();
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
        _tasks[jobId] = Task.Run(async () =>
        {
            try { await ExecuteAsync(hostId, jobId, attempt, stop, shutdown); }
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

    private async Task ExecuteAsync(int host, Guid jobId, int attempt, CancellationTokenSource stop, CancellationToken shutdown)
    {
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
        Directory.CreateDirectory(run.OutputDir);
        var tailer = new TrainerLogTailer(Path.Combine(run.OutputDir, "trainer_log.jsonl"), (records, _) =>
        {
            spool.Add(new SpooledReport(host, run.JobId, run.Attempt, new RunMetricsRequest(run.Attempt, records), null));
            return Task.CompletedTask;
        }, options.LogPollInterval, log);
        using var tailing = new CancellationTokenSource();
        var tail = tailer.RunAsync(tailing.Token);
        FinishRunRequest finish;
        try { finish = await SuperviseAsync(run, stop, shutdown); }
        finally
        {
            await tailing.CancelAsync();
            await tail;
            await tailer.PollAsync(CancellationToken.None); // the last lines written before exit
        }
        log.WriteLine($"run {run.JobId} attempt {run.Attempt}: {finish.Outcome}" + (finish.Error != null ? $": {finish.Error}" : "") + $" ({tailer.Sent} log records spooled)");
        spool.Add(new SpooledReport(host, run.JobId, run.Attempt, null, finish));
    }

    /// <summary>Runs the trainer to an outcome, restarting it from its newest checkpoint when it was killed.</summary>
    private async Task<FinishRunRequest> SuperviseAsync(StartRunResponse run, CancellationTokenSource stop, CancellationToken shutdown)
    {
        string? lastError = null;
        var fence = Path.Combine(run.RunDir, "attempt.fence");
        for (int restarts = 0; ; restarts++)
        {
            // The attempt claims the run's directory once; a restart within it only checks it still holds it.
            try { if (restarts == 0) RunFence.Claim(fence, run.Attempt); else new RunFence(fence, run.Attempt).Check(); }
            catch (SupersededException e) { return new(run.Attempt, RunOutcomes.Interrupted, null, e.Message); }
            var resume = RunConfig.NewestCheckpoint(run.OutputDir);
            var config = RunConfig.Write(run, resume);
            var marker = Path.Combine(run.RunDir, $"attempt-{run.Attempt}.lease-expired");
            File.Delete(marker);
            log.WriteLine($"run {run.JobId} attempt {run.Attempt}: starting {string.Join(' ', options.TrainerCommand)} train {config}" + (resume != null ? $" (resuming from {Path.GetFileName(resume)})" : ""));
            TrainerProcess trainer;
            try
            {
                trainer = await TrainerProcess.StartAsync(options.TrainerCommand, ["train", config], run.RunDir,
                    Path.Combine(run.RunDir, $"attempt-{run.Attempt}.log"), new Dictionary<string, string>
                    {
                        ["LONGSEQ_JOB_ID"] = run.JobId.ToString(), [RunFence.FileVariable] = fence,
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
                if (File.Exists(marker))
                    return new(run.Attempt, RunOutcomes.Interrupted, exit, File.ReadAllText(marker).Trim());
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
