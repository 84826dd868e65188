using System.Collections.Concurrent;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Runs;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// Executes one run placed on this host (the Hangfire job <see cref="IRunExecutor"/>): asks the API to
/// start it (refused for a stale or duplicate execution, which then does nothing), writes the run file (config.json),
/// launches the trainer CLI as a child process, forwards trainer_log.jsonl, and reports the outcome.
/// A cancel (from the heartbeat's stop list) stops the child's process group; host shutdown stops it too
/// but reports nothing, so the run is requeued and resumes from its checkpoint.
/// </summary>
public sealed class RunExecutor(HostOptions options, HostApiClient api, Func<int> hostId, TextWriter log) : IRunExecutor
{
    private readonly ConcurrentDictionary<Guid, (int Attempt, CancellationTokenSource Stop)> _running = new();

    public IReadOnlyList<RunningRun> Running => _running.Select(kv => new RunningRun(kv.Key, kv.Value.Attempt)).ToList();

    /// <summary>Stops a run this host executes (cancelled, or no longer assigned here).</summary>
    public void Stop(Guid jobId)
    {
        if (_running.TryGetValue(jobId, out var run)) run.Stop.Cancel();
    }

    public void StopAll()
    {
        foreach (var run in _running.Values) run.Stop.Cancel();
    }

    public async Task ExecuteAsync(Guid jobId, int attempt, CancellationToken cancellationToken)
    {
        int host = hostId();
        var run = await api.StartRunAsync(host, jobId, attempt, cancellationToken);
        if (run == null)
        {
            log.WriteLine($"run {jobId} attempt {attempt}: not this host's to start (cancelled, requeued or already running); skipped");
            return;
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _running[jobId] = (attempt, stop);
        try { await RunAsync(host, run, stop, cancellationToken); }
        finally { _running.TryRemove(jobId, out _); }
    }

    private async Task RunAsync(int host, StartRunResponse run, CancellationTokenSource stop, CancellationToken shutdown)
    {
        Directory.CreateDirectory(run.OutputDir);
        var resume = RunConfig.NewestCheckpoint(run.OutputDir);
        var config = RunConfig.Write(run, resume);
        log.WriteLine($"run {run.JobId} attempt {run.Attempt}: starting {string.Join(' ', options.TrainerCommand)} train {config}" + (resume != null ? $" (resuming from {Path.GetFileName(resume)})" : ""));

        var tailer = new TrainerLogTailer(Path.Combine(run.OutputDir, "trainer_log.jsonl"),
            async (records, ct) => { if (!await api.SendMetricsAsync(host, run.JobId, records, ct)) stop.Cancel(); }, options.LogPollInterval, log);
        using var tailing = new CancellationTokenSource();
        var tail = tailer.RunAsync(tailing.Token);

        int? exit = null;
        string? error = null;
        TrainerProcess? trainer = null;
        try
        {
            trainer = await TrainerProcess.StartAsync(options.TrainerCommand, ["train", config], run.RunDir,
                Path.Combine(run.RunDir, $"attempt-{run.Attempt}.log"), new Dictionary<string, string> { ["LONGSEQ_JOB_ID"] = run.JobId.ToString() });
            exit = await trainer.WaitAsync(stop.Token);
            if (exit != 0) error = trainer.LastErrorLine ?? $"the trainer exited with code {exit}";
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            if (trainer != null) await trainer.StopAsync(options.KillGrace);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or FileNotFoundException or DirectoryNotFoundException)
        {
            exit = -1;
            error = $"could not start the trainer ({string.Join(' ', options.TrainerCommand)}): {e.Message}";
        }
        finally
        {
            await tailing.CancelAsync();
            await tail;
            await tailer.PollAsync(CancellationToken.None); // the last lines written before exit
            trainer?.Dispose();
        }

        if (exit == null && shutdown.IsCancellationRequested)
        {
            log.WriteLine($"run {run.JobId}: host shutting down; trainer stopped, the run will be requeued");
            shutdown.ThrowIfCancellationRequested();
        }
        var outcome = exit == null ? RunOutcomes.Cancelled : exit == 0 ? RunOutcomes.Succeeded : RunOutcomes.Failed;
        log.WriteLine($"run {run.JobId} attempt {run.Attempt}: {outcome}" + (error != null ? $": {error}" : "") + $" ({tailer.Sent} log records forwarded)");
        await ReportAsync(host, run, new FinishRunRequest(run.Attempt, outcome, exit, error));
    }

    /// <summary>The outcome must reach the API: retried for a minute (the API may be restarting).</summary>
    private async Task ReportAsync(int host, StartRunResponse run, FinishRunRequest finish)
    {
        for (int i = 0; ; i++)
        {
            try
            {
                if (!await api.FinishAsync(host, run.JobId, finish, CancellationToken.None))
                    log.WriteLine($"run {run.JobId}: the API no longer counts attempt {run.Attempt} as this host's; outcome dropped");
                return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && i < 30)
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
        }
    }
}
