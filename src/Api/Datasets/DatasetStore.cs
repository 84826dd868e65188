using LongSeqService.Api.Infrastructure;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Datasets;

/// <summary>Dataset files in the artifact store, addressed by content hash
/// (datasets/ab/abcdef….jsonl): the same bytes are stored once, whoever uploads them.</summary>
public sealed class DatasetStore(IOptions<LongSeqOptions> options)
{
    public string TempDir => Directory.CreateDirectory(options.Value.DataPath("tmp")).FullName;

    public static string RelativePath(string sha256, string extension) => Path.Combine("datasets", sha256[..2], sha256 + extension);

    public string FullPath(string relative) => options.Value.DataPath(relative);

    /// <summary>Moves a checked upload to <paramref name="relative"/>; if the same content is already there, keeps
    /// that one. True when this call placed the file (so a failed insert knows it may take it away again).</summary>
    public bool Commit(string tempFile, string relative)
    {
        var target = FullPath(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (File.Exists(target)) { File.Delete(tempFile); return false; }
        File.Move(tempFile, target, overwrite: true);
        return true;
    }
}
