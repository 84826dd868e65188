using System.Text;
using System.Text.Json;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// Follows <c>trainer_log.jsonl</c> while the trainer writes it and hands every new complete line, parsed,
/// to <c>send</c>. Records that could not be sent are kept and sent with the next batch; a file that
/// shrank (rewritten by a resumed run) is read again from the start (the API replaces a step logged twice).
/// </summary>
public sealed class TrainerLogTailer(string path, Func<IReadOnlyList<TrainerLogRecord>, CancellationToken, Task> send, TimeSpan interval, TextWriter? log = null)
{
    private long _offset;
    private readonly List<TrainerLogRecord> _pending = [];
    public int Sent { get; private set; }

    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await PollAsync(CancellationToken.None);
            try { await Task.Delay(interval, ct); } catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Reads what is new and sends it; called on every tick and once more at the end.</summary>
    public async Task PollAsync(CancellationToken ct)
    {
        ReadNew();
        if (_pending.Count == 0) return;
        try
        {
            await send(_pending.ToArray(), ct);
            Sent += _pending.Count;
            _pending.Clear();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            log?.WriteLine($"metrics not sent yet ({_pending.Count} pending): {e.Message}");
        }
    }

    private void ReadNew()
    {
        if (!File.Exists(path)) return;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (file.Length < _offset) _offset = 0;
        if (file.Length == _offset) return;
        file.Seek(_offset, SeekOrigin.Begin);
        var bytes = new byte[file.Length - _offset];
        int read = 0, n;
        while (read < bytes.Length && (n = file.Read(bytes, read, bytes.Length - read)) > 0) read += n;
        int lastNewline = Array.LastIndexOf(bytes, (byte)'\n', read - 1);
        if (lastNewline < 0) return; // no complete line yet
        _offset += lastNewline + 1;
        foreach (var line in Encoding.UTF8.GetString(bytes, 0, lastNewline).Split('\n'))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                if (JsonSerializer.Deserialize<TrainerLogRecord>(line, WireJson.Options) is { } record) _pending.Add(record);
            }
            catch (JsonException e) { log?.WriteLine($"skipping an unreadable trainer_log.jsonl line: {e.Message}"); }
        }
    }
}
