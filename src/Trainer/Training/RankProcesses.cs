using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LongSeqService.Trainer.Parallel;

namespace LongSeqService.Trainer.Training;

/// <summary>What the launcher hands every rank process, as a file named on its command line.</summary>
/// <param name="LauncherBootId">The launcher's machine (<see cref="Parallel.Mpi.MpiJob.BootId"/>): ranks on other machines do not watch its pid.</param>
public sealed record RankWorkerRequest(RunRecipe Recipe, RunOptions Options, int LauncherPid, string ResultDir, string? LauncherBootId = null);

/// <summary>
/// The wire between rank processes and their launcher, all files in the run's folder: the request,
/// progress events that the main rank appends to <c>events.jsonl</c> as they happen (the launcher tails
/// it; mpiexec's forwarded stdout can cut a line in two), and the result the main rank leaves at the end.
/// </summary>
public static class RankProcesses
{
    public const string EventsFile = "events.jsonl";

    /// <summary>NaN (an unknown ETA) and infinities must survive the trip.</summary>
    public static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Calls <paramref name="observer"/> for one event line.</summary>
    public static void Dispatch(string line, ITrainingObserver? observer)
    {
        var e = JsonNode.Parse(line)!.AsObject();
        switch ((string)e["event"]!)
        {
            case "start": observer?.OnStart((int)e["first"]!, (int)e["total"]!); break;
            case "step": observer?.OnStep(e["progress"].Deserialize<ProgressInfo>(Json)!, e["metrics"].Deserialize<StepMetrics>(Json)!); break;
            case "log": observer?.OnLog(e["record"]!.AsObject()); break;
            case "checkpoint": observer?.OnCheckpoint((int)e["step"]!, (string)e["path"]!); break;
        }
    }

    public static void WriteResult(string dir, RankOutcome outcome)
    {
        var o = new JsonObject
        {
            ["history"] = JsonSerializer.SerializeToNode(outcome.History, Json),
            ["rank_attention_seconds"] = JsonSerializer.SerializeToNode(outcome.RankAttentionSeconds, Json),
            ["rank_model_state_bytes"] = JsonSerializer.SerializeToNode(outcome.RankModelStateBytes, Json),
            ["state_communication_seconds"] = outcome.StateCommunicationSeconds,
        };
        File.WriteAllText(Path.Combine(dir, "result.json"), o.ToJsonString(Json));
        WriteDoubles(Path.Combine(dir, "first_gradient.bin"), outcome.FirstGradient);
        WriteDoubles(Path.Combine(dir, "final_parameters.bin"), outcome.FinalParameters);
    }

    public static RunResult ReadResult(string dir)
    {
        var path = Path.Combine(dir, "result.json");
        if (!File.Exists(path)) throw new InvalidOperationException("the ranks ended without the main rank's result");
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var history = o["history"].Deserialize<List<StepMetrics>>(Json)!;
        var attention = o["rank_attention_seconds"].Deserialize<double[][]>(Json)!;
        return new RunResult(history, ReadDoubles(Path.Combine(dir, "first_gradient.bin")), ReadDoubles(Path.Combine(dir, "final_parameters.bin")),
            attention.Select(a => AttentionTimer.FromSeconds(a[0], a[1], a[2])).ToArray())
        {
            RankModelStateBytes = o["rank_model_state_bytes"].Deserialize<long[][]>(Json) ?? [],
            StateCommunicationSeconds = (double?)o["state_communication_seconds"] ?? 0,
        };
    }

    private static void WriteDoubles(string path, double[]? values)
    {
        if (values != null) File.WriteAllBytes(path, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    private static double[]? ReadDoubles(string path) =>
        File.Exists(path) ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(File.ReadAllBytes(path)).ToArray() : null;
}

/// <summary>The main rank's observer in a rank process: each event becomes a line of the events file.</summary>
internal sealed class ProgressRelay(string path) : ITrainingObserver
{
    private readonly object _lock = new();

    public void OnStart(int firstStep, int totalSteps) => Emit(new JsonObject { ["event"] = "start", ["first"] = firstStep, ["total"] = totalSteps });

    public void OnStep(ProgressInfo progress, StepMetrics metrics) => Emit(new JsonObject
    {
        ["event"] = "step",
        ["progress"] = JsonSerializer.SerializeToNode(progress, RankProcesses.Json),
        ["metrics"] = JsonSerializer.SerializeToNode(metrics, RankProcesses.Json),
    });

    public void OnLog(JsonObject record) => Emit(new JsonObject { ["event"] = "log", ["record"] = record.DeepClone() });

    public void OnCheckpoint(int step, string path) => Emit(new JsonObject { ["event"] = "checkpoint", ["step"] = step, ["path"] = path });

    private void Emit(JsonObject e)
    {
        lock (_lock) File.AppendAllText(path, e.ToJsonString(RankProcesses.Json) + "\n");
    }
}

/// <summary>The launcher's end of the events file: hands complete new lines to the observer.</summary>
internal sealed class EventTail(string path) : IDisposable
{
    private FileStream? _stream;
    private readonly List<byte> _partial = [];
    private readonly byte[] _buffer = new byte[1 << 16];

    public void Drain(ITrainingObserver? observer)
    {
        if (_stream is null)
        {
            if (!File.Exists(path)) return;
            _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        int n;
        while ((n = _stream.Read(_buffer, 0, _buffer.Length)) > 0) _partial.AddRange(_buffer.AsSpan(0, n));
        int end;
        while ((end = _partial.IndexOf((byte)'\n')) >= 0)
        {
            var line = System.Text.Encoding.UTF8.GetString(_partial.GetRange(0, end).ToArray());
            _partial.RemoveRange(0, end + 1);
            RankProcesses.Dispatch(line, observer);
        }
    }

    public void Dispose() => _stream?.Dispose();
}
