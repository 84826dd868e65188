using System.Text.Json;
using System.Text.Json.Serialization;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Trainer.Host;

/// <summary>One report a host owes the API: a batch of metrics, or how a run ended.</summary>
public sealed record SpooledReport(int HostId, Guid JobId, int Attempt, RunMetricsRequest? Metrics, FinishRunRequest? Finish)
{
    [JsonIgnore] public string Path => $"/v1/hosts/{HostId}/runs/{JobId}/{(Metrics != null ? "metrics" : "finish")}";
    [JsonIgnore] public object Body => (object?)Metrics ?? Finish!;
}

/// <summary>
/// Reports survive the API, the database and this process being away: each is written to the spool
/// directory (fsync'd, then renamed into place) before anyone relies on it, and a sender posts them in
/// order, oldest first, removing each once the API took it — or refused it for good (a stale attempt:
/// <c>onRefused</c> stops that trainer). A transient failure (no connection, 503) leaves the head in place
/// and retries; files left by an earlier process are replayed on start. The API applies each report once
/// (guarded updates, metric upserts per step), so a report sent twice — the answer lost — is harmless.
/// </summary>
public sealed class ReportSpool(string dir, HostApiClient api, Action<SpooledReport> onRefused, TextWriter log)
{
    private readonly SemaphoreSlim _wake = new(0);
    private readonly object _gate = new();
    private long _seq = -1;
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    public int Pending => Files().Count;

    public void Add(SpooledReport report)
    {
        lock (_gate)
        {
            Directory.CreateDirectory(dir);
            if (_seq < 0) _seq = Files().Select(Seq).DefaultIfEmpty(0).Max();
            var name = Path.Combine(dir, $"{++_seq:D12}.json");
            var tmp = name + ".tmp";
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                JsonSerializer.Serialize(file, report, WireJson.Options);
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, name);
            SyncDirectory();
        }
        _wake.Release();
    }

    /// <summary>Sends whatever is spooled, as it comes, until cancelled.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                bool sentAll = await DrainAsync(ct);
                await _wake.WaitAsync(sentAll ? Timeout.InfiniteTimeSpan : RetryDelay, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    /// <summary>Posts what is spooled, in order; false when the API could not be reached (try again later).</summary>
    public async Task<bool> DrainAsync(CancellationToken ct)
    {
        foreach (var file in Files())
        {
            SpooledReport? report;
            try { report = JsonSerializer.Deserialize<SpooledReport>(await File.ReadAllBytesAsync(file, ct), WireJson.Options); }
            catch (JsonException e)
            {
                log.WriteLine($"spool: dropping unreadable {Path.GetFileName(file)}: {e.Message}");
                File.Delete(file);
                continue;
            }
            if (report == null) { File.Delete(file); continue; }
            try
            {
                if (!await api.ReportAsync(report.Path, report.Body, ct))
                {
                    log.WriteLine($"run {report.JobId} attempt {report.Attempt}: the API refused a report (stale attempt); stopping that trainer");
                    onRefused(report);
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                return false;
            }
            File.Delete(file);
        }
        return true;
    }

    private List<string> Files() => Directory.Exists(dir)
        ? Directory.EnumerateFiles(dir, "*.json").Where(f => Seq(f) > 0).OrderBy(Seq).ToList() : [];

    private static long Seq(string file) => long.TryParse(Path.GetFileNameWithoutExtension(file), out var n) ? n : 0;

    /// <summary>The rename itself must be durable too: fsync the directory (Linux allows opening one read-only).</summary>
    private void SyncDirectory()
    {
        if (!OperatingSystem.IsLinux()) return;
        int fd = open(dir, 0);
        if (fd < 0) return;
        _ = fsync(fd);
        _ = close(fd);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [System.Runtime.InteropServices.DllImport("libc")] private static extern int fsync(int fd);
    [System.Runtime.InteropServices.DllImport("libc")] private static extern int close(int fd);
}
