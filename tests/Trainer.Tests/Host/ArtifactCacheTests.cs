using System.Security.Cryptography;
using LongSeqService.Shared.Runs;
using LongSeqService.Trainer.Host;

namespace LongSeqService.Trainer.Tests.Host;

/// <summary>A remote host's input cache under a size limit: the files used least recently go once a new one takes the cache
/// over the limit; a file used since (a hit) is kept, and the file just fetched is kept whatever its size.</summary>
public sealed class ArtifactCacheTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("artifact-cache-").FullName;

    public void Dispose() => Directory.Delete(_state, recursive: true);

    private static (InputFile Input, byte[] Bytes) File(int seed, int size)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return (new InputFile($"f{seed}.json", Convert.ToHexStringLower(SHA256.HashData(bytes)), size), bytes);
    }

    private static async Task<string> GetAsync(ArtifactCache cache, (InputFile Input, byte[] Bytes) f, List<string> fetched) =>
        await cache.GetAsync(f.Input, async (sha, file, ct) => { fetched.Add(f.Input.Path); await file.WriteAsync(f.Bytes, ct); return true; }, CancellationToken.None);

    [Fact]
    public async Task Get_OverTheLimit_DeletesTheLeastRecentlyUsedAndKeepsWhatWasUsedSince()
    {
        var cache = new ArtifactCache(_state, maxBytes: 2_500);
        var (a, b, c, d) = (File(1, 1_000), File(2, 1_000), File(3, 1_000), File(4, 3_000));
        var fetched = new List<string>();

        var pathA = await GetAsync(cache, a, fetched);
        await Task.Delay(20);
        await GetAsync(cache, b, fetched);
        await Task.Delay(20);
        Assert.Equal(pathA, await GetAsync(cache, a, fetched));                              // a hit: a is now the newer of the two
        await Task.Delay(20);
        await GetAsync(cache, c, fetched);                                                  // 3,000 > 2,500: b goes

        Assert.Equal(["f1.json", "f2.json", "f3.json"], fetched);
        Assert.Equal(new[] { a.Input.Sha256, c.Input.Sha256 }.Order(), Directory.GetFiles(cache.Dir).Select(Path.GetFileName).Order());
        Assert.Equal(a.Bytes, await System.IO.File.ReadAllBytesAsync(pathA));

        await GetAsync(cache, b, fetched);                                                  // fetched again: a goes (the oldest use)
        Assert.Equal("f2.json", fetched[^1]);
        Assert.Equal(new[] { b.Input.Sha256, c.Input.Sha256 }.Order(), Directory.GetFiles(cache.Dir).Select(Path.GetFileName).Order());

        var pathD = await GetAsync(cache, d, fetched);                                      // larger than the limit alone: kept, the rest go
        Assert.Equal([d.Input.Sha256], Directory.GetFiles(cache.Dir).Select(Path.GetFileName));
        Assert.Equal(d.Bytes, await System.IO.File.ReadAllBytesAsync(pathD));
    }

    [Fact]
    public void HostCommand_CacheMax_ParsesSizesAndNamesTheOptionWhenBad()
    {
        var key = Path.Combine(_state, "host.key");
        System.IO.File.WriteAllText(key, "lsk_test");
        Assert.Equal(200L << 30, HostCommand.Parse(["--api", "http://h:5080", "--token-file", key, "--cache-max", "200G"]).CacheMaxBytes);
        Assert.Null(HostCommand.Parse(["--api", "http://h:5080", "--token-file", key]).CacheMaxBytes);
        var e = Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h:5080", "--token-file", key, "--cache-max", "most"]));
        Assert.Contains("cache-max", e.Message);
    }

    [Fact]
    public async Task Get_WithoutALimit_KeepsEverything()
    {
        var cache = new ArtifactCache(_state);
        var fetched = new List<string>();
        for (int i = 0; i < 4; i++) await GetAsync(cache, File(i, 2_000), fetched);
        Assert.Equal(4, Directory.GetFiles(cache.Dir).Length);
    }
}
