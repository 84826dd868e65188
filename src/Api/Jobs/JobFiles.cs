using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Api.Jobs;

/// <summary>
/// Reads a job's output directory: checkpoint-&lt;step&gt;/ folders and the files to download. A symbolic
/// link anywhere below the output directory is neither listed nor served nor walked into: the trainer
/// writes plain files, so a link can only be something planted to read the server's files
/// (/etc/passwd, host.key, the database password) through a tenant's download.
/// </summary>
public static partial class JobFiles
{
    [GeneratedRegex(@"^checkpoint-(\d+)$")] private static partial Regex CheckpointName();

    /// <summary>Enumeration that skips links (on Unix a symlink carries ReparsePoint) and so never recurses through one.</summary>
    private static EnumerationOptions NoLinks(bool recurse) => new() { RecurseSubdirectories = recurse, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };

    public static List<CheckpointDto> Checkpoints(string outputDir) => !Directory.Exists(outputDir) ? [] :
        Directory.EnumerateDirectories(outputDir, "*", NoLinks(recurse: false))
            .Select(d => (dir: d, m: CheckpointName().Match(Path.GetFileName(d))))
            .Where(x => x.m.Success && int.TryParse(x.m.Groups[1].Value, out _))
            .Select(x => new CheckpointDto(int.Parse(x.m.Groups[1].Value), Path.GetFileName(x.dir), Directory.GetCreationTimeUtc(x.dir)))
            .OrderBy(c => c.Step).ToList();

    public static List<ArtifactDto> List(string outputDir) => !Directory.Exists(outputDir) ? [] :
        Directory.EnumerateFiles(outputDir, "*", NoLinks(recurse: true))
            .Select(f => new FileInfo(f))
            .Select(f => new ArtifactDto(Path.GetRelativePath(outputDir, f.FullName).Replace('\\', '/'), f.Length, f.LastWriteTimeUtc))
            .OrderBy(a => a.Path, StringComparer.Ordinal).ToList();

    /// <summary>The file under the output directory that <paramref name="relative"/> names, or null
    /// (missing, a directory, outside the output directory, or reached through a link).</summary>
    public static string? Resolve(string outputDir, string relative)
    {
        var full = Below(outputDir, relative);
        return full != null && File.Exists(full) ? full : null;
    }

    /// <summary>The plain (link-free) path that <paramref name="relative"/> names strictly below <paramref name="root"/>,
    /// or null. With no link between root and it, its real path is root's real path plus the relative part, so
    /// it cannot lead outside root (no ../ escapes either).</summary>
    public static string? Below(string root, string relative)
    {
        if (relative.Contains('\0')) return null;
        var top = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(Path.Combine(top, relative)));
        if (!full.StartsWith(top + Path.DirectorySeparatorChar, StringComparison.Ordinal)) return null;
        for (var p = full; p.Length > top.Length; p = Path.GetDirectoryName(p)!)
            if (new FileInfo(p).LinkTarget != null) return null;
        return full;
    }
}
