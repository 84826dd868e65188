using System.Text;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// A checkpoint of a world across hosts (<c>mpi_hosts</c>) with zero_stage ≥ 1: the ranks on other hosts do not see
/// the checkpoint folder rank 0 writes on the launching host, so each sends its optimizer partition file to rank 0
/// over MPI (its name, then its bytes in pieces of <see cref="CheckpointShare.PieceBytes"/>, each acknowledged before the next, so
/// no more than one piece per rank is in flight), and rank 0 writes it into the folder. The checkpoint is then
/// the same files as on one host, and resumes as one (<see cref="CheckpointShare"/> sends it back out).
/// </summary>
internal static class PartitionRelay
{
    private const int Tag = 0x5AFE;                                   // apart from the attention rings' tags

    /// <summary>Every rank calls it after rank 0 created <paramref name="folder"/>: the ranks (besides rank 0) that do not
    /// see it. Rank 0 marks the folder with a name of this save's own, so a stale folder at the same path on another
    /// host (a save cut short there when that host launched an earlier attempt) is not mistaken for it.</summary>
    public static IReadOnlyList<int> Away(ICollectives world, string folder)
    {
        using var scope = NewDisposeScope();
        var mark = tensor(world.Rank == 0 ? Guid.NewGuid().ToByteArray() : new byte[16], ScalarType.Byte);   // (16,)
        world.Broadcast(mark, 0);
        var marker = Path.Combine(folder, $".rank0-{new Guid(mark.data<byte>().ToArray()):N}");
        if (world.Rank == 0) File.WriteAllBytes(marker, []);
        world.Barrier();
        bool sees = File.Exists(marker);
        world.Barrier();                                                              // everyone looked before it goes
        if (world.Rank == 0) File.Delete(marker);
        var flag = tensor(new long[] { world.Rank != 0 && !sees ? 1 : 0 });           // (1,)
        var flags = world.AllGather(flag, 0).data<long>().ToArray();                  // (world,)
        return Enumerable.Range(0, world.WorldSize).Where(r => flags[r] != 0).ToList();
    }

    public static void Send(ICollectives world, string file)
    {
        using var scope = NewDisposeScope();
        world.Send(tensor(Encoding.UTF8.GetBytes(Path.GetFileName(file)), ScalarType.Byte), 0, Tag);
        long length = new FileInfo(file).Length;
        world.Send(tensor(new[] { length }), 0, Tag);
        using var source = File.OpenRead(file);
        var piece = new byte[CheckpointShare.PieceBytes];
        for (long sent = 0; sent < length; sent += CheckpointShare.PieceBytes)
        {
            int n = (int)Math.Min(CheckpointShare.PieceBytes, length - sent);
            source.ReadExactly(piece, 0, n);
            using var chunk = tensor(piece[..n], ScalarType.Byte);                   // (n,)
            world.Send(chunk, 0, Tag);
            world.Recv(0, Tag).Dispose();                                             // rank 0 has it: the next piece
        }
    }

    public static void Receive(ICollectives world, int rank, string folder)
    {
        using var scope = NewDisposeScope();
        var name = Path.GetFileName(Encoding.UTF8.GetString(world.Recv(rank, Tag).data<byte>().ToArray()));
        if (!name.StartsWith("optimizer-", StringComparison.Ordinal) || !name.EndsWith(".safetensors", StringComparison.Ordinal))
            throw new InvalidDataException($"rank {rank} sent a checkpoint part named '{name}', not optimizer-<start>-<end>.safetensors");
        long length = world.Recv(rank, Tag).item<long>();
        using var sink = File.Create(Path.Combine(folder, name));
        for (long got = 0; got < length;)
        {
            using var chunk = world.Recv(rank, Tag);
            sink.Write(chunk.data<byte>().ToArray());
            got += chunk.numel();
            using var ack = tensor(new long[] { got });
            world.Send(ack, rank, Tag);
        }
    }
}
