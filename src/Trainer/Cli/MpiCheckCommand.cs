using LongSeqService.Trainer.Parallel.Mpi;
using TorchSharp.PyBridge;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>mpiexec -n N trainer mpi-check --out DIR</c>: runs <see cref="CollectiveChecks"/> over MPI and
/// writes each rank's results to <c>DIR/rank-R.safetensors</c>, to be compared with the in-process
/// results (the tests do; so can anyone checking a cluster's MPI).
/// </summary>
public static class MpiCheckCommand
{
    public static int Run(string[] args)
    {
        var cli = CliArgs.Parse(args);
        cli.RejectUnknown(["out"]);
        var dir = cli.Require("out", "/tmp/mpi-check");
        var world = MpiRuntime.InitWorld();
        try
        {
            var results = CollectiveChecks.Run(world);
            Directory.CreateDirectory(dir);
            Safetensors.SaveStateDict(Path.Combine(dir, $"rank-{world.Rank}.safetensors"), results);
            foreach (var t in results.Values) t.Dispose();
            world.Barrier();
        }
        catch (Exception e)
        {
            world.Abort(e);
            throw;
        }
        MpiRuntime.Shutdown();
        if (world.Rank == 0) Console.WriteLine($"mpi-check: {world.WorldSize} ranks wrote {dir}");
        return 0;
    }
}
