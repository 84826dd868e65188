using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Api.Jobs;

/// <summary>Reads a job's output directory: checkpoint-&lt;step&gt;/ folders and the files to download.</summary>
public static partial class JobFiles
{
    [GeneratedRegex(@"^checkpoint-(\d+)$")] private static partial Regex CheckpointName();

    public static List<CheckpointDto> Checkpoints(string outputDir) => !Directory.Exists(outputDir) ? [] :
        Directory.EnumerateDirectories(outputDir)
            .Select(d => (dir: d, m: CheckpointName().Match(Path.GetFileName(d))))
            .Where(x => x.m.Success && int.TryParse(x.m.Groups[1].Value, out _))
            .Select(x => new CheckpointDto(int.Parse(x.m.Groups[1].Value), Path.GetFileName(x.dir), Directory.GetCreationTimeUtc(x.dir)))
            .OrderBy(c => c.Step).ToList();

    public static List<ArtifactDto> List(string outputDir) => !Directory.Exists(outputDir) ? [] :
        Directory.EnumerateFiles(outputDir, "*", SearchOption.AllDirectories)
            .Select(f => new FileInfo(f))
            .Select(f => new ArtifactDto(Path.GetRelativePath(outputDir, f.FullName).Replace('\\', '/'), f.Length, f.LastWriteTimeUtc))
            .OrderBy(a => a.Path, StringComparer.Ordinal).ToList();

    /// <summary>The file under the output directory that <paramref name="relative"/> names, or null
    /// (missing, a directory, or outside the output directory: no ../ escapes).</summary>
    public static string? Resolve(string outputDir, string relative)
    {
        var root = Path.GetFullPath(outputDir) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(root, relative));
        return full.StartsWith(root, StringComparison.Ordinal) && File.Exists(full) ? full : null;
    }
}
