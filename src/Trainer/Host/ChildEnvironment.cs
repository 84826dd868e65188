using System.Collections;

namespace LongSeqService.Trainer.Host;

/// <summary>
/// The environment a trainer child gets: an allow-list of what a process needs to run (locale, paths,
/// .NET and thread settings, MPI's and UCX's own variables, the launcher and interface of worlds that span hosts),
/// so nothing the host holds — its host key, an admin
/// key, a database connection or password — is inherited. Anything else a trainer needs is passed
/// explicitly (the job id).
/// </summary>
public static class ChildEnvironment
{
    private static readonly string[] Names = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"];
    private static readonly string[] Prefixes = ["LC_", "DOTNET_", "HYDRA_", "MPIR_", "MPICH_", "PMI_", "OMPI_", "KMP_", "TORCH_", "UCX_", "LONGSEQ_MPI_"];
    /// <summary>Never passed, whatever the prefix: names that carry secrets by convention.</summary>
    private static readonly string[] Secret = ["KEY", "TOKEN", "PASSWORD", "SECRET", "PGPASS", "CONNECTION"];

    public static IEnumerable<KeyValuePair<string, string>> From(IDictionary environment)
    {
        foreach (DictionaryEntry e in environment)
        {
            if (e.Key is not string name || e.Value is not string value) continue;
            bool allowed = Names.Contains(name) || Prefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));
            if (allowed && !Secret.Any(s => name.Contains(s, StringComparison.OrdinalIgnoreCase))) yield return new(name, value);
        }
    }
}
