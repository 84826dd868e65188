using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace LongSeqService.Api.Hosts;

/// <summary>SHA-256 of files on the artifact store, remembered by (path, size, modification time): a registered
/// model of several GB is hashed once per API process, not at every start of every run that names it.</summary>
public sealed class ContentHashes
{
    private readonly ConcurrentDictionary<(string Path, long Size, DateTime Modified), string> _known = new();

    public async Task<string> Sha256Async(string path, CancellationToken ct)
    {
        var info = new FileInfo(path);
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc);
        if (_known.TryGetValue(key, out var hash)) return hash;
        hash = await OfFileAsync(path, ct);
        _known[key] = hash;
        return hash;
    }

    /// <summary>The file's SHA-256, lowercase hex.</summary>
    public static async Task<string> OfFileAsync(string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct));
    }
}
