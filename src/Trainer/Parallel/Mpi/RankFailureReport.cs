using System.Text.Json.Nodes;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// How a rank process tells its launcher why it failed, just before MPI_Abort ends the job: a file
/// <c>failure-rank-R.json</c> in the run's folder (rank, error type, message, time), written once per
/// process, and the same as one line on stderr for people. A file, because mpiexec's forwarded output
/// can cut a line in two.
/// </summary>
public static class RankFailureReport
{
    private static int _written;

    /// <summary>The run's folder (set by the rank worker); without it the report only goes to stderr.</summary>
    public static string? Directory { get; set; }

    public static void Write(int rank, Exception e)
    {
        if (Interlocked.Exchange(ref _written, 1) == 1) return;
        var inner = e is AggregateException { InnerException: { } i } ? i : e;
        var report = new JsonObject { ["rank"] = rank, ["type"] = inner.GetType().Name, ["message"] = inner.Message, ["ticks"] = DateTime.UtcNow.Ticks };
        Console.Error.WriteLine($"rank {rank} failed: {inner.GetType().Name}: {inner.Message}");
        if (Directory is { } dir)
        {
            var path = Path.Combine(dir, $"failure-rank-{rank}.json");
            File.WriteAllText(path + ".tmp", report.ToJsonString());
            File.Move(path + ".tmp", path, overwrite: true);             // whole or absent for the reader
        }
    }

    /// <summary>The earliest report in <paramref name="dir"/>: the first failure, not its consequences.</summary>
    public static (int Rank, string Type, string Message)? ReadFirst(string dir) =>
        System.IO.Directory.EnumerateFiles(dir, "failure-rank-*.json")
            .Select(f => JsonNode.Parse(File.ReadAllText(f))!.AsObject())
            .OrderBy(o => (long)o["ticks"]!)
            .Select(o => ((int)o["rank"]!, (string)o["type"]!, (string)o["message"]!))
            .Cast<(int, string, string)?>()
            .FirstOrDefault();
}
