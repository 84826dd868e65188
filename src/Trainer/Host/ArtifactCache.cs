using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using LongSeqService.Shared.Runs;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// A host's local copy of run inputs, by content: <c>&lt;state-dir&gt;/cache/sha256/&lt;hash&gt;</c>. A file is
/// downloaded into <c>cache/partial/&lt;hash&gt;</c> (continued with a Range request after an interruption), its
/// SHA-256 checked, and only then renamed into the cache, so the cache never holds half a file or wrong bytes;
/// a hash already there is reused without asking the API. With <paramref name="maxBytes"/>, the files used least
/// recently (a file's modification time is set at each use) are deleted once a new one takes the cache over that size;
/// the file just fetched stays whatever its size. A run still using a deleted file keeps it: runs get hard links (or
/// copies), so the space comes back when that run's folder goes.
/// </summary>
public sealed class ArtifactCache(string stateDir, long? maxBytes = null)
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new();
    public string Dir => Path.Combine(stateDir, "cache", "sha256");
    private string PartialDir => Path.Combine(stateDir, "cache", "partial");

    /// <summary>Downloads happen through this: (sha256, the partial file to append to) → false when the API refused it for good.</summary>
    public delegate Task<bool> Fetch(string sha256, FileStream partial, CancellationToken ct);

    /// <summary>The cached file holding <paramref name="input"/>'s bytes, downloading it first when it is not cached.</summary>
    public async Task<string> GetAsync(InputFile input, Fetch fetch, CancellationToken ct)
    {
        if (!System.Text.RegularExpressions.Regex.IsMatch(input.Sha256, "^[0-9a-f]{64}$")) throw new InvalidDataException($"input {input.Path}: '{input.Sha256}' is not a SHA-256");
        var cached = Path.Combine(Dir, input.Sha256);
        if (Touch(cached)) return cached;
        var gate = _locks.GetOrAdd(input.Sha256, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            if (Touch(cached)) return cached;
            Directory.CreateDirectory(Dir);
            Directory.CreateDirectory(PartialDir);
            var partial = Path.Combine(PartialDir, input.Sha256);
            await using (var file = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                if (file.Length > input.SizeBytes) file.SetLength(0);
                if (file.Length < input.SizeBytes && !await fetch(input.Sha256, file, ct))
                    throw new InvalidDataException($"input {input.Path}: the API refused its download (the run is no longer this host's)");
            }
            var actual = await Sha256Async(partial, ct);
            if (actual != input.Sha256 || new FileInfo(partial).Length != input.SizeBytes)
            {
                File.Delete(partial);
                throw new InvalidDataException($"input {input.Path}: downloaded bytes hash to {actual}, not {input.Sha256}; discarded");
            }
            File.Move(partial, cached, overwrite: true);
            Touch(cached);
            Evict(keep: cached);
            return cached;
        }
        finally { gate.Release(); }
    }

    /// <summary>Marks a cached file used now; false when it is not cached.</summary>
    private static bool Touch(string cached)
    {
        try { File.SetLastWriteTimeUtc(cached, DateTime.UtcNow); return true; }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
    }

    /// <summary>Deletes the least recently used files until the cache is within <c>maxBytes</c> (never <paramref name="keep"/>).</summary>
    private void Evict(string keep)
    {
        if (maxBytes is not { } limit) return;
        var files = new DirectoryInfo(Dir).GetFiles().OrderBy(f => f.LastWriteTimeUtc).ToList();
        long total = files.Sum(f => f.Length);
        foreach (var f in files)
        {
            if (total <= limit) break;
            if (f.FullName == Path.GetFullPath(keep)) continue;
            long length = f.Length;
            try { f.Delete(); total -= length; }
            catch (IOException) { }                                        // another process of this host has it open: next time
        }
    }

    public static async Task<string> Sha256Async(string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct));
    }

    /// <summary>Puts a cached file at <paramref name="target"/>: a hard link (no copy) when <paramref name="link"/> and the
    /// file system allows it, else a copy (written beside, then renamed). A copy for anything the trainer may rewrite
    /// (a checkpoint it resumes from), so the cache's bytes cannot change under it.</summary>
    public static void Place(string cached, string target, bool link)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (File.Exists(target)) File.Delete(target);
        if (link && OperatingSystem.IsLinux() && LinkFile(cached, target) == 0) return;
        var temp = target + ".tmp";
        File.Copy(cached, temp, overwrite: true);
        File.Move(temp, target, overwrite: true);
    }

    [DllImport("libc", EntryPoint = "link", SetLastError = true)] private static extern int LinkFile(string oldPath, string newPath);
}
