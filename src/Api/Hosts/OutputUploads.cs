using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using LongSeqService.Api.Jobs;

namespace LongSeqService.Api.Hosts;

/// <summary>
/// Output files a host with its own disk uploads into a job's output folder (PUT …/outputs/{path}). The bytes
/// collect in a partial file under jobs/&lt;id&gt;/uploads/, named by (path, sha256, size) — not by attempt, so a
/// restarted host (or the next attempt) sending the same bytes continues where the last one stopped. A file
/// lands in the output folder only whole, its SHA-256 checked, by one rename: the output folder never holds
/// half a file, and a checkpoint whose trainer_state.json (sent last) is there is complete.
/// </summary>
public sealed partial class OutputUploads
{
    /// <summary>The most bytes one PUT may carry; the host sends a file in chunks of at most this.</summary>
    public const int MaxChunkBytes = 16 << 20;
    /// <summary>The largest file a host may upload (a 70B checkpoint's shards are a few GB each).</summary>
    public const long MaxFileBytes = 64L << 30;

    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")] private static partial Regex Segment();
    [GeneratedRegex(@"^[0-9a-f]{64}$")] public static partial Regex Sha256Hex();

    /// <summary>Why <paramref name="path"/> may not name an output file (null when it may): relative, '/'-separated
    /// names of letters, digits and ._- (no '..', no absolute path, no backslash), at most 8 deep and 400 characters.</summary>
    public static string? PathError(string path)
    {
        if (path.Length is 0 or > 400) return "1 to 400 characters";
        if (path.StartsWith('/') || path.Contains('\\')) return "a path relative to the job's output folder, '/'-separated (no absolute path, no backslash)";
        var parts = path.Split('/');
        if (parts.Length > 8) return "at most 8 folders deep";
        if (parts.Any(p => p is "." or ".." || !Segment().IsMatch(p))) return $"'{path}': every part must be a plain name of letters, digits and ._- (no '..', no empty part)";
        return null;
    }

    public static string PartialPath(string runDir, string path, string sha256, long size) =>
        Path.Combine(runDir, "uploads", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{path}\n{sha256}\n{size}"))) + ".part");

    /// <summary>How much of the file the store holds: whole (already in the output folder with this content) or the partial's length.</summary>
    public async Task<(long Received, bool Complete)> StatusAsync(string runDir, string final, string partial, string sha256, long size, ContentHashes hashes, CancellationToken ct)
    {
        if (File.Exists(final) && new FileInfo(final).Length == size && await hashes.Sha256Async(final, ct) == sha256) return (size, true);
        return (File.Exists(partial) ? Math.Min(new FileInfo(partial).Length, size) : 0, false);
    }

    public sealed record Appended(long Received, string? Field = null, string? Error = null, bool TooLarge = false);

    /// <summary>Writes <paramref name="body"/> at <paramref name="offset"/> of the partial file (a retry of bytes already
    /// received overwrites them; a gap is refused). More bytes than the declared size, or a chunk over the limit, are
    /// refused and taken back, so the partial only ever holds a prefix of the file.</summary>
    public async Task<Appended> AppendAsync(string partial, long offset, long size, Stream body, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(partial)!);
        await using var file = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        if (offset > file.Length) return new(file.Length, "offset", $"the API holds {file.Length} bytes of this file: send from offset {file.Length}");
        file.SetLength(offset);
        file.Seek(offset, SeekOrigin.Begin);
        var buffer = new byte[1 << 20];
        long written = 0;
        for (int n; (n = await body.ReadAsync(buffer, ct)) > 0;)
        {
            written += n;
            if (written > MaxChunkBytes || offset + written > size)
            {
                file.SetLength(offset);
                return written > MaxChunkBytes
                    ? new(offset, "body", $"at most {MaxChunkBytes} bytes per request: send the file in chunks", TooLarge: true)
                    : new(offset, "size", $"more bytes than the declared size {size}");
            }
            await file.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        await file.FlushAsync(ct);
        return new(file.Length);
    }

    /// <summary>Serialises PUTs of one partial file (a host retrying while its first request still runs).</summary>
    public async Task<IDisposable> LockAsync(string partial, CancellationToken ct)
    {
        var gate = _locks.GetOrAdd(partial, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        return new Release(gate);
    }

    private sealed class Release(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    /// <summary>The output file <paramref name="path"/> names (validated by <see cref="PathError"/>), or null when it would leave the output folder through a link.</summary>
    public static string? Final(string outputDir, string path) => JobFiles.Below(outputDir, path);
}
