namespace LongSeqService.Trainer.Host;

/// <summary>
/// Uploads a remote run's local output folder into the job's output folder on the API's store: each complete
/// checkpoint-&lt;step&gt;/ (trainer_state.json exists, the rule of <see cref="RunConfig.NewestCheckpoint"/>) while the
/// trainer runs — its trainer_state.json last, so the API's copy is complete exactly when that file is there — and,
/// after the trainer succeeded, every other file (the model, trainer_log.jsonl, …). Each file goes in chunks from the
/// offset the API says it holds, so an upload cut short (a dropped connection, a host restart) continues there.
/// </summary>
public sealed class OutputUploader(HostApiClient api, int hostId, Guid jobId, int attempt, string outputDir, TextWriter log)
{
    public const int ChunkBytes = 8 << 20;
    private readonly HashSet<string> _uploaded = [];

    /// <summary>The checkpoints uploaded so far by this uploader, by folder name.</summary>
    public IReadOnlyCollection<string> Uploaded => _uploaded;

    /// <summary>Uploads checkpoints every <paramref name="interval"/> until cancelled; transient failures are retried on the next
    /// tick. Fenced off (409: the run moved on), it calls <paramref name="onStale"/> (stop the trainer) and stops uploading.</summary>
    public async Task RunAsync(TimeSpan interval, Action onStale, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try { await CheckpointsAsync(ct); }
            catch (StaleAttemptException e)
            {
                log.WriteLine($"run {jobId} attempt {attempt}: the API refused its upload ({e.Message}); stopping the trainer");
                onStale();
                return;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception e)
            {
                log.WriteLine($"run {jobId} attempt {attempt}: checkpoint upload deferred: {e.Message}");
            }
            try { await Task.Delay(interval, ct); } catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Uploads every complete checkpoint not uploaded yet, oldest first. One the trainer deleted meanwhile
    /// (save_total_limit) is skipped.</summary>
    public async Task CheckpointsAsync(CancellationToken ct)
    {
        if (!Directory.Exists(outputDir)) return;
        var complete = Directory.EnumerateDirectories(outputDir, "checkpoint-*")
            .Select(d => (dir: d, step: long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out var s) ? s : -1))
            .Where(x => x.step >= 0 && File.Exists(Path.Combine(x.dir, "trainer_state.json")) && !_uploaded.Contains(Path.GetFileName(x.dir)))
            .OrderBy(x => x.step).ToList();
        foreach (var (dir, _) in complete)
        {
            var name = Path.GetFileName(dir);
            try
            {
                var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).OrderBy(f => Path.GetFileName(f) == "trainer_state.json").ToList();
                foreach (var f in files) await FileAsync(Path.GetRelativePath(outputDir, f).Replace('\\', '/'), f, ct);
                _uploaded.Add(name);
                log.WriteLine($"run {jobId} attempt {attempt}: uploaded {name} ({files.Count} files)");
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException && !Directory.Exists(dir))
            {
                log.WriteLine($"run {jobId} attempt {attempt}: {name} was removed before its upload finished; skipped");
            }
        }
    }

    /// <summary>After the trainer succeeded: the checkpoints left, then every other file of the output folder.</summary>
    public async Task FinalAsync(CancellationToken ct)
    {
        await CheckpointsAsync(ct);
        var files = Directory.EnumerateFiles(outputDir, "*", SearchOption.AllDirectories)
            .Select(f => (full: f, rel: Path.GetRelativePath(outputDir, f).Replace('\\', '/')))
            .Where(x => !x.rel.StartsWith("checkpoint-", StringComparison.Ordinal)).OrderBy(x => x.rel, StringComparer.Ordinal).ToList();
        foreach (var (full, rel) in files) await FileAsync(rel, full, ct);
        log.WriteLine($"run {jobId} attempt {attempt}: uploaded the final output ({files.Count} files)");
    }

    /// <summary>One file, from where the API's partial copy ends. Throws <see cref="StaleAttemptException"/> when fenced off.</summary>
    private async Task FileAsync(string relative, string full, CancellationToken ct)
    {
        var size = new FileInfo(full).Length;
        var sha = await ArtifactCache.Sha256Async(full, ct);
        var status = await api.UploadStatusAsync(hostId, jobId, attempt, relative, sha, size, ct);
        if (status.Complete) return;
        await using var file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20);
        var buffer = new byte[(int)Math.Min(ChunkBytes, Math.Max(size, 1))];
        for (long offset = status.Received; ;)
        {
            file.Seek(offset, SeekOrigin.Begin);
            int n = 0, r;
            while (n < buffer.Length && offset + n < size && (r = await file.ReadAsync(buffer.AsMemory(n, (int)Math.Min(buffer.Length - n, size - offset - n)), ct)) > 0) n += r;
            var answer = await api.UploadChunkAsync(hostId, jobId, attempt, relative, sha, size, offset, buffer.AsMemory(0, n), ct);
            if (answer.Complete) return;
            if (answer.Received <= offset && n > 0 || n == 0) throw new HttpRequestException($"upload of {relative} made no progress at offset {offset}");
            offset = answer.Received;
        }
    }
}
