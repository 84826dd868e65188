using System.Text.Json;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Resuming a world that spans hosts (<c>mpi_hosts</c>): the checkpoint is on the launching host only, where rank 0
/// wrote it. Rank 0 sends its files over MPI to the ranks that cannot see the folder (in pieces of
/// <see cref="PieceBytes"/>); they lay them out in a folder of their own and resume from that, so every rank loads the
/// same bytes as on one host. With zero_stage ≥ 1 the folder holds every rank's optimizer partition (the ranks on other
/// hosts sent theirs to rank 0 when it was saved: <see cref="PartitionRelay"/>); they all travel, and each rank loads
/// the ones that overlap what it holds now, whatever world wrote them.
/// </summary>
public static class CheckpointShare
{
    /// <summary>The most bytes of a file in one MPI message (here and in <see cref="PartitionRelay"/>).</summary>
    internal const int PieceBytes = 64 << 20;

    /// <summary>Called by every rank of the world with rank 0's checkpoint path (or null: nothing to resume). Returns the
    /// folder this rank resumes from: rank 0's own where this rank sees it, else a local copy received from rank 0.</summary>
    public static string? Local(ICollectives world, string? checkpoint)
    {
        if (checkpoint is null) return null;
        bool missing = world.Rank != 0 && !File.Exists(Path.Combine(checkpoint, "trainer_state.json"));
        using (var scope = NewDisposeScope())
        {
            var count = tensor(new long[] { missing ? 1 : 0 });                            // (1,)
            world.AllReduceSum(count);
            if (count.item<long>() == 0) return checkpoint;                                  // every rank sees the folder
        }
        var files = world.Rank == 0
            ? Directory.EnumerateFiles(checkpoint, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                .Select(f => new SharedFile(Path.GetRelativePath(checkpoint, f), new FileInfo(f).Length)).ToList()
            : null;
        files = JsonSerializer.Deserialize<List<SharedFile>>(WorldShare.Broadcast(world, world.Rank == 0 ? JsonSerializer.SerializeToUtf8Bytes(files) : null))!;
        var local = missing ? Path.Combine(Path.GetTempPath(), $"longseq-resume-{Environment.ProcessId}", Path.GetFileName(checkpoint)) : checkpoint;
        if (missing)
        {
            Directory.CreateDirectory(local);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(Path.GetDirectoryName(local)!, true); } catch (IOException) { } };
        }
        var piece = new byte[PieceBytes];
        foreach (var file in files)
        {
            using var source = world.Rank == 0 ? File.OpenRead(Path.Combine(checkpoint, file.Path)) : null;
            string target = Path.Combine(local, file.Path);
            if (missing) Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            using var sink = missing ? File.Create(target) : null;
            for (long sent = 0; sent < file.Length; sent += PieceBytes)
            {
                int n = (int)Math.Min(PieceBytes, file.Length - sent);
                if (source != null) source.ReadExactly(piece, 0, n);
                var bytes = WorldShare.Broadcast(world, source != null ? piece[..n] : null);
                sink?.Write(bytes);
            }
        }
        return local;
    }

    private sealed record SharedFile(string Path, long Length);
}
