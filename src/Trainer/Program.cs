using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Training;

// The trainer CLI: training without the service (like llamafactory-cli), the SP self-check and
// benchmark, and the trainer-host process of the service.
const string usage = """
    usage:
      trainer train CONFIG.yaml [--key value ...]     train (LLaMA-Factory keys; --key overrides the file)
      trainer parity --model M --sp N --mode MODE ... compare SP=N with SP=1 (exit 0 when within tolerance)
      trainer bench --model M --seq-len T --sp N ...  tokens/s, attention balance and memory per configuration
      trainer bench --find-max-len --rank-memory-limit BYTES --sp 1,2,4 ...
                                                      longest trainable sequence per SP size under a per-rank limit
      trainer estimate --model M --seq-len T --sp N|auto ...
                                                      predicted per-rank peak memory, by term (config.json only)
      trainer host --api URL --token KEY ...          run a trainer host for the service
      (train, parity and bench take --launch processes: one process per rank under mpiexec, MPICH)
    """;

OpenMpSettings.PreferPassiveWaiting();   // before anything touches libtorch
try
{
    return args.FirstOrDefault() switch
    {
        "train" => TrainCommand.Run(args[1..]),
        "parity" => ParityCommand.Run(args[1..]),
        "bench" => BenchCommand.Run(args[1..]),
        "estimate" => EstimateCommand.Run(args[1..]),
        "host" => LongSeqService.Trainer.Host.HostCommand.RunAsync(args[1..]).GetAwaiter().GetResult(),
        "rank-worker" => RankWorker.Run(args[1..]),                   // hidden: one rank of a run launched as processes
        "mpi-check" => MpiCheckCommand.Run(args[1..]),             // hidden: collectives over MPI, for tests and cluster checks
        null or "-h" or "--help" or "help" => Help(),
        var other => throw new CliException($"unknown command '{other}'\n{usage}"),
    };
}
catch (CliException e)
{
    Console.Error.WriteLine("error: " + e.Message);
    return 2;
}
catch (JobSpecException e)
{
    foreach (var err in e.Errors) Console.Error.WriteLine($"error: {err.Field}: {err.Message}");
    return 2;
}
catch (Exception e) when (RunFence.Cause(e) is { } superseded)
{
    Console.Error.WriteLine("error: " + superseded.Message);
    return RunFence.ExitCode;
}
catch (Exception e) when (Environment.GetEnvironmentVariable("LONGSEQ_DEBUG") is null)
{
    // A failure during the run: one line for people and the trainer host (which reports the last stderr line).
    Console.Error.WriteLine("error: " + (e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message));
    return 1;
}

int Help()
{
    Console.WriteLine(usage);
    return 0;
}
