using System.Text.Json;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel.Mpi;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// <c>launch: processes</c>: one process per rank, as torchrun does — <c>mpiexec -n W dotnet trainer.dll
/// rank-worker REQUEST.json</c>. The ranks talk over MPI (<see cref="MpiCollectives"/>); the main rank's
/// progress events reach <paramref name="observer"/> here as they happen; the run's figures come back
/// in a <see cref="RunResult"/> as with threads. A rank that fails ends the job, and this throws a
/// <see cref="Parallel.RankFailedException"/> naming it.
/// </summary>
public static class RankProcessLauncher
{
    public static RunResult Run(PreparedRun prep, ITrainingObserver? observer, RunOptions options)
    {
        var recipe = prep.Recipe ?? throw new InvalidOperationException(
            "launch: processes rebuilds the run in every rank process; prepare it with RunPreparation or a SyntheticRecipe");
        if (!MpiJob.IsAvailable) throw new JobSpecException([new SpecError("launch", MpiJob.InstallHint + "; or use launch: threads")]);
        var dir = Directory.CreateTempSubdirectory("longseq-ranks-").FullName;
        try
        {
            // The output directory was checked once, here; the ranks must not refuse it again once the main rank writes to it.
            // The base folder absolute: with mpi_hosts the ranks do not start in this process's working folder.
            var request = new RankWorkerRequest(recipe with { Spec = recipe.Spec with { OverwriteOutputDir = true }, BaseDir = recipe.BaseDir is { } b ? Path.GetFullPath(b) : null },
                options, Environment.ProcessId, dir, MpiJob.BootId());
            var requestPath = Path.Combine(dir, "request.json");
            File.WriteAllText(requestPath, JsonSerializer.Serialize(request, RankProcesses.Json));
            // mpi_hosts: ranks on other hosts get the run from rank 0 over MPI (WorldShare), not from this folder.
            var hosts = prep.Spec.MpiHosts is { } list ? MpiHosts.Parse(list, out _) : null;
            string[] args = hosts is null ? ["rank-worker", requestPath] : ["rank-worker", requestPath, RankWorker.SharedOption];
            using var job = MpiJob.Start(prep.Spec.WorldSize, args, dir, hosts: hosts);
            using var events = new EventTail(Path.Combine(dir, RankProcesses.EventsFile));
            while (!job.WaitForExit(50))
            {
                events.Drain(observer);
                if (options.StopAboveRankBytes is { } limit && OverLimit(job, limit) is { } over)
                    throw new RankMemoryLimitException(over.Rank, over.Bytes, limit);     // disposing the job ends every rank
            }
            events.Drain(observer);
            if (job.ExitCode != 0) throw job.Failure();
            return RankProcesses.ReadResult(dir);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static (int Rank, long Bytes)? OverLimit(MpiJob job, long limit) =>
        job.AnnouncedRanks().Select(r => (r.Rank, Bytes: NativeMemory.ResidentBytesOf(r.Pid))).Where(r => r.Bytes > limit)
            .Cast<(int, long)?>().FirstOrDefault();
}

/// <summary>A rank process passed <see cref="RunOptions.StopAboveRankBytes"/>; the launch was ended.</summary>
public sealed class RankMemoryLimitException(int rank, long bytes, long limit)
    : Exception($"rank {rank} passed the per-rank limit: {bytes / 1048576:N0} MiB resident > {limit / 1048576:N0} MiB; the launch was stopped there")
{
    public int Rank => rank;
    public long Bytes => bytes;
}
