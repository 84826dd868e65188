using System.Text.Json;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>What rank 0 tells every rank of a world on several hosts: the request and the prepared run (spec as
/// resolved, dtype, tokenized data), so that no rank reads a file only the launching host has.</summary>
public sealed record SharedRun(RankWorkerRequest Request, JobSpec Spec, ScalarType DType, TrainingData Train, TrainingData Val, int PadId);

/// <summary>
/// <c>mpi_hosts</c>: ranks on other hosts have neither the request file, nor the dataset, nor the tokenizer.
/// Rank 0 (on the launching host) reads the request and prepares the run once, as on one host, and sends the
/// result to every rank over MPI (one broadcast of its JSON); the others build the same <see cref="PreparedRun"/>
/// from it. The model itself is built on every rank as on one host: a builtin or shape needs no file, a model
/// directory must be at the same path on every host. A resumed run's checkpoint travels the same way (<see cref="CheckpointShare"/>).
/// </summary>
public static class WorldShare
{
    /// <summary>Run by every rank; <paramref name="requestPath"/> is read on rank 0 only.</summary>
    public static (RankWorkerRequest Request, PreparedRun Prep) Receive(ICollectives world, string requestPath)
    {
        byte[]? payload = null;
        PreparedRun? mine = null;
        if (world.Rank == 0)
        {
            if (!File.Exists(requestPath))
                throw new InvalidOperationException($"rank 0 runs on a host without {requestPath}: the first host in mpi_hosts must be the one that launches the run");
            var request = JsonSerializer.Deserialize<RankWorkerRequest>(File.ReadAllText(requestPath), RankProcesses.Json)
                ?? throw new InvalidDataException($"{requestPath}: empty request");
            mine = request.Recipe.Prepare();
            var spec = mine.Spec;
            // The checkpoint is only on this host: named by its full path, it is sent to the ranks that lack it (CheckpointShare).
            var checkpoint = mine.OutputDir != null ? Checkpoints.Resolve(spec.ResumeFromCheckpoint, mine.OutputDir) : null;
            if (mine.OutputDir != null) spec = spec with { ResumeFromCheckpoint = checkpoint != null ? Path.GetFullPath(checkpoint) : null };   // "latest" with none yet: the same on every host
            mine = mine with { Spec = spec };
            payload = JsonSerializer.SerializeToUtf8Bytes(new SharedRun(request, spec, mine.Models.DType, mine.Train, mine.Val, mine.PadId), RankProcesses.Json);
        }
        var bytes = Broadcast(world, payload);
        var shared = JsonSerializer.Deserialize<SharedRun>(bytes, RankProcesses.Json)!;
        var resume = CheckpointShare.Local(world, shared.Spec.ResumeFromCheckpoint);
        if (mine != null) return (shared.Request, mine);
        var shape = ModelShape.TryResolve(shared.Spec.ModelNameOrPath!, out var error)
            ?? throw new InvalidOperationException($"model_name_or_path: {error} (on this host: a model directory must be at the same path on every host of mpi_hosts)");
        // No tokenizer here: only the main rank saves, and it copies the tokenizer files on the launching host.
        var resumed = shared.Spec with { ResumeFromCheckpoint = resume };
        return (shared.Request, new PreparedRun(resumed, shape, new ModelFactory(resumed, shared.DType, tokenizerDir: null), resumed.OutputDir,
            shared.Train, shared.Val, shared.PadId, []) { Recipe = shared.Request.Recipe });
    }

    /// <summary>Rank 0's bytes on every rank: their length, then the bytes.</summary>
    internal static byte[] Broadcast(ICollectives world, byte[]? payload)
    {
        using var scope = NewDisposeScope();
        var length = tensor(new[] { payload?.LongLength ?? 0 }, ScalarType.Int64);                // (1,)
        world.Broadcast(length, 0);
        var data = world.Rank == 0 ? tensor(payload!, ScalarType.Byte) : zeros(length.item<long>(), ScalarType.Byte);   // (bytes,)
        world.Broadcast(data, 0);
        return data.data<byte>().ToArray();
    }
}
