using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// How a rank process tells its launcher why it failed: one line on stderr, written once per process,
/// just before MPI_Abort ends the job. mpiexec forwards every rank's stderr, so the launcher can name
/// the failing rank and its error instead of only "a process died".
/// </summary>
public static class RankFailureReport
{
    public const string Marker = "LONGSEQ_RANK_FAILED ";
    private static int _written;

    public static void Write(int rank, Exception e)
    {
        if (Interlocked.Exchange(ref _written, 1) == 1) return;
        var inner = e is AggregateException { InnerException: { } i } ? i : e;
        var line = new JsonObject { ["rank"] = rank, ["type"] = inner.GetType().Name, ["message"] = inner.Message }.ToJsonString();
        Console.Error.WriteLine(Marker + line);
        Console.Error.Flush();
    }

    /// <summary>The report in a line of mpiexec's output (possibly behind a "[rank] " prefix), or null.</summary>
    public static (int Rank, string Type, string Message)? TryParse(string line)
    {
        int at = line.IndexOf(Marker, StringComparison.Ordinal);
        if (at < 0) return null;
        try
        {
            var o = JsonNode.Parse(line[(at + Marker.Length)..])!.AsObject();
            return ((int)o["rank"]!, (string)o["type"]!, (string)o["message"]!);
        }
        catch (JsonException) { return null; }
    }
}
