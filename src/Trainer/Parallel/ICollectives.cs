using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Communication between the ranks of one group (an SP group, a DP group, or the whole world).
/// Every rank of the group calls the collective operations in the same order, as in MPI.
/// Implementations: <see cref="InProcessCollectives"/> (ranks are threads of one process) and
/// <see cref="Mpi.MpiCollectives"/> (ranks are processes under mpiexec), which is why a receive
/// either names its buffer (<see cref="RecvInto"/>) or relies on a header the sender writes
/// (dtype and shape) for <see cref="Recv"/>.
/// Tensors handed out by this interface belong to the caller and are attached to the caller's
/// current <c>DisposeScope</c>, like any tensor an operation returns.
/// </summary>
public interface ICollectives
{
    /// <summary>This rank's index in the group, 0..WorldSize-1.</summary>
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>
    /// Sends <paramref name="tensor"/> to rank <paramref name="dst"/>. Buffered: the call does not wait
    /// for the receiver, so a ring can post the next send before computing the current block. The caller
    /// may dispose its handle right away but must not write to the tensor afterwards (the MPI
    /// implementation sends from the tensor's own memory while the call has long returned). Messages from
    /// one sender to one receiver with the same tag arrive in the order they were sent.
    /// </summary>
    void Send(Tensor tensor, int dst, int tag = 0);

    /// <summary>Blocks until the next message from <paramref name="src"/> with this tag arrives.</summary>
    Tensor Recv(int src, int tag = 0);

    /// <summary>Receives into a buffer of the expected shape and dtype (what MPI needs without a header).</summary>
    void RecvInto(Tensor buffer, int src, int tag = 0);

    /// <summary>
    /// In place: every rank's tensor becomes the sum over ranks, added in rank order, so the result
    /// is bit-identical on every rank (ranks must stay in lock-step).
    /// </summary>
    void AllReduceSum(Tensor tensor);

    /// <summary>
    /// The sum over ranks of <paramref name="tensor"/> (read flat: <c>numel == Σ counts</c>), of which this rank
    /// gets only its part: elements <c>[Σ counts[..Rank], + counts[Rank])</c>. Added in rank order, so every
    /// element has the same bits as in <see cref="AllReduceSum"/>. Counts are the same list on every rank
    /// and may be uneven or zero (a partition of the flat parameter space, ZeRO stage 2).
    /// </summary>
    Tensor ReduceScatterSum(Tensor tensor, IReadOnlyList<long> counts);

    /// <summary>Concatenates every rank's tensor along <paramref name="dim"/>, in rank order. The sizes along
    /// <paramref name="dim"/> may differ between ranks, zero included (gathering uneven partitions).</summary>
    Tensor AllGather(Tensor tensor, long dim);

    /// <summary>
    /// Splits the tensor into WorldSize equal chunks along <paramref name="scatterDim"/>, sends chunk j
    /// to rank j, and concatenates the chunks received from ranks 0..N-1 along <paramref name="gatherDim"/>.
    /// </summary>
    Tensor AllToAll(Tensor tensor, long scatterDim, long gatherDim);

    /// <summary>In place: every rank's tensor becomes a copy of rank <paramref name="root"/>'s.</summary>
    void Broadcast(Tensor tensor, int root);

    void Barrier();

    /// <summary>
    /// A sub-group of this group made of <paramref name="ranks"/> (indices in this group, in the order
    /// that defines the new ranks). Every member calls it with the same list; non-members may not.
    /// Used for hybrid Ulysses × ring and for data-parallel × sequence-parallel worlds.
    /// </summary>
    ICollectives Split(IReadOnlyList<int> ranks);

    /// <summary>
    /// Marks the whole world failed and wakes every rank blocked in a send, receive or collective with a
    /// <see cref="CollectiveAbortedException"/> (MPI: MPI_Abort). Only the first reason is kept.
    /// </summary>
    void Abort(Exception reason);
}
