namespace LongSeqService.Trainer.Tests;

/// <summary>Files of the repository, found from the test's output folder (a clean clone works anywhere).</summary>
public static class RepoPaths
{
    public static readonly string Root = FindRoot();

    /// <summary>A dataset under data/ (LLaMA-Factory's demo datasets, Apache-2.0).</summary>
    public static string Data(string file) => Path.Combine(Root, "data", file);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LongSeqService.sln"))) return dir.FullName;
        throw new InvalidOperationException("LongSeqService.sln not found above " + AppContext.BaseDirectory);
    }
}
