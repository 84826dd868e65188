using System.Text.Json;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Parallel.Mpi;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// <c>trainer rank-worker REQUEST.json</c>, started by mpiexec once per rank: prepares the run again from
/// its recipe, runs the same per-rank body as a thread rank (<see cref="RankRun"/>) over MPI, and on the
/// main rank relays progress on stdout and leaves the result beside the request. Any failure is reported
/// (rank and error) and ends the whole job through MPI_Abort.
/// </summary>
public static class RankWorker
{
    /// <summary>A failure drill for tests: "RANK:STEP" makes that rank die (Environment.FailFast) before that
    /// step; "RANK:STEP:throw" makes it throw instead (the reported-error path).</summary>
    public const string FailFastVariable = "LONGSEQ_FAILFAST_RANK_AT_STEP";

    public static int Run(string requestPath)
    {
        var request = JsonSerializer.Deserialize<RankWorkerRequest>(File.ReadAllText(requestPath), RankProcesses.Json)
            ?? throw new InvalidDataException($"{requestPath}: empty request");
        MpiJob.AnnounceRank(request.ResultDir);
        MpiJob.WatchLauncher(request.LauncherPid);
        RankFailureReport.Directory = request.ResultDir;
        FlashCpuAttentionKernel.EnsureCompiled();                 // at start-up, as designed: not inside the first step's memory
        var world = MpiRuntime.InitWorld();
        try
        {
            var prep = request.Recipe.Prepare();
            var body = new RankRun(prep, request.Options, world.Rank == 0 ? new ProgressRelay(Path.Combine(request.ResultDir, RankProcesses.EventsFile)) : null) { BeforeStep = FailureDrill() };
            var outcome = body.Run(world, new AttentionTimer(), ownProcess: true);
            if (world.Rank == 0) RankProcesses.WriteResult(request.ResultDir, outcome);
            world.Barrier();
        }
        catch (Exception e)
        {
            world.Abort(e);                                       // does not return: mpiexec ends every rank
            return 1;
        }
        MpiRuntime.Shutdown();
        return 0;
    }

    private static Action<int, int>? FailureDrill()
    {
        var drill = Environment.GetEnvironmentVariable(FailFastVariable);
        if (string.IsNullOrEmpty(drill)) return null;
        var parts = drill.Split(':');
        int rank = int.Parse(parts[0]), step = int.Parse(parts[1]);
        bool throws = parts.Length > 2 && parts[2] == "throw";
        return (r, s) =>
        {
            if (r != rank || s != step) return;
            if (throws) throw new InvalidOperationException($"{FailFastVariable}: rank {r} fails at step {s}");
            Environment.FailFast($"{FailFastVariable}: rank {r} dies before step {s}");
        };
    }
}
