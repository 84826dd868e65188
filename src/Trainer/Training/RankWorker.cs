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

    /// <summary>The option that says the ranks span hosts (<c>mpi_hosts</c>): rank 0 reads the request and
    /// shares the prepared run (<see cref="WorldShare"/>); only ranks on the launching host use its folder.</summary>
    public const string SharedOption = "--shared-by-rank-0";

    public static int Run(string[] args)
    {
        var requestPath = args[0];
        if (args.Skip(1).Contains(SharedOption)) return RunShared(requestPath);
        var request = JsonSerializer.Deserialize<RankWorkerRequest>(File.ReadAllText(requestPath), RankProcesses.Json)
            ?? throw new InvalidDataException($"{requestPath}: empty request");
        MpiJob.AnnounceRank(request.ResultDir);
        MpiJob.WatchLauncher(request.LauncherPid);
        RankFailureReport.Directory = request.ResultDir;
        FlashCpuAttentionKernel.EnsureCompiled();                 // at start-up, as designed: not inside the first step's memory
        var world = MpiRuntime.InitWorld();
        return Train(world, request, () => request.Recipe.Prepare());
    }

    /// <summary>
    /// A world on several hosts: MPI first (the request arrives over it), and the launching host's folder
    /// (rank pids, failure reports, events, result) only where this host has it; elsewhere a failure is
    /// reported on stderr, which Hydra forwards to the launcher (<see cref="MpiJob.Failure"/> reads it there).
    /// </summary>
    private static int RunShared(string requestPath)
    {
        FlashCpuAttentionKernel.EnsureCompiled();
        var world = MpiRuntime.InitWorld();
        RankWorkerRequest request;
        PreparedRun prep;
        try { (request, prep) = WorldShare.Receive(world, requestPath); }
        catch (Exception e)
        {
            world.Abort(e);
            return 1;
        }
        if (Directory.Exists(request.ResultDir))
        {
            MpiJob.AnnounceRank(request.ResultDir);
            RankFailureReport.Directory = request.ResultDir;
        }
        if (request.LauncherBootId == MpiJob.BootId()) MpiJob.WatchLauncher(request.LauncherPid);   // its pid means nothing on another machine
        MpiJob.AnnounceRankOnStdout(world.Rank);
        return Train(world, request, () => prep, finalize: false);
    }

    private static int Train(Parallel.Mpi.MpiCollectives world, RankWorkerRequest request, Func<PreparedRun> prepare, bool finalize = true)
    {
        try
        {
            var prep = prepare();
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
        MpiRuntime.Shutdown(finalize);
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
