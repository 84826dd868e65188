using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// <see cref="ICollectives"/> over MPI, for ranks that are separate processes (one per slot, started by
/// <c>mpiexec</c>). Every transfer reads and writes the tensors' own memory (no staging copies beyond
/// what a layout change needs).
/// <list type="bullet">
/// <item>Send posts a header (dtype and shape) and the payload as non-blocking sends and returns; the
/// tensor's memory is held until MPI is done with it, so the caller may dispose its handle (but must
/// not write to the tensor). Recv reads the header, allocates, and receives into the new tensor.</item>
/// <item>AllReduceSum is an all-gather followed by the sum in rank order on every rank — not
/// MPI_Allreduce, whose order is the library's choice — so every replica gets the same bits, and the
/// same bits as the in-process world.</item>
/// </list>
/// </summary>
public sealed unsafe class MpiCollectives : ICollectives
{
    private const int HeaderLength = 10;                       // dtype, ndim, up to 8 sizes
    private const long AllReduceChunkBytes = 4L << 20;        // gather buffer per all-reduce round (W pieces): per-rank memory stays flat
    private readonly int _comm;
    private readonly int _worldRank;
    private readonly List<PendingSend> _sends = [];

    internal MpiCollectives(int comm, int worldRank)
    {
        _comm = comm;
        int rank, size;
        MpiNative.Check(MpiNative.CommRank(comm, &rank), "MPI_Comm_rank");
        MpiNative.Check(MpiNative.CommSize(comm, &size), "MPI_Comm_size");
        (Rank, WorldSize) = (rank, size);
        _worldRank = worldRank < 0 ? rank : worldRank;
        MpiRuntime.Register(this);
    }

    public int Rank { get; }

    public int WorldSize { get; }

    public void Send(Tensor tensor, int dst, int tag = 0)
    {
        CheckPeer(dst, nameof(dst));
        ReapSends();
        using var _ = torch.no_grad();
        // A handle of our own on the same memory, outside any dispose scope, alive until MPI is done.
        var payload = tensor.detach();
        if (!payload.is_contiguous()) { var c = payload.contiguous(); payload.Dispose(); payload = c; }
        payload.DetachFromDisposeScope();
        var header = Header(payload).DetachFromDisposeScope();
        Post(header, dst, tag);
        Post(payload, dst, tag);                              // same tag after the header: MPI keeps their order
    }

    public Tensor Recv(int src, int tag = 0)
    {
        CheckPeer(src, nameof(src));
        var (dtype, shape) = ReceiveHeader(src, tag);
        var result = torch.empty(shape, dtype);
        ReceiveInto(result, src, tag);
        return result;
    }

    public void RecvInto(Tensor buffer, int src, int tag = 0)
    {
        CheckPeer(src, nameof(src));
        var (dtype, shape) = ReceiveHeader(src, tag);
        using var _ = torch.no_grad();
        if (!shape.SequenceEqual(buffer.shape) || dtype != buffer.dtype)
        {
            using var discard = torch.empty(shape, dtype);
            ReceiveInto(discard, src, tag);                    // keep the stream in step before failing
            throw new InvalidOperationException(
                $"rank {Rank} expected ({string.Join(", ", buffer.shape)}) {buffer.dtype} from rank {src} but got ({string.Join(", ", shape)}) {dtype}");
        }
        if (buffer.is_contiguous()) { ReceiveInto(buffer, src, tag); return; }
        using var staging = torch.empty(shape, dtype);
        ReceiveInto(staging, src, tag);
        buffer.copy_(staging);
    }

    public void AllReduceSum(Tensor tensor)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        bool inPlace = tensor.is_contiguous();
        var flat = (inPlace ? tensor : tensor.contiguous()).view(-1);                        // (numel), our memory or a copy
        long n = flat.numel(), piece = Math.Max(1, AllReduceChunkBytes / (WorldSize * tensor.element_size()));
        var gathered = torch.empty(WorldSize * Math.Min(n, piece), dtype: tensor.dtype);
        for (long offset = 0; offset < n; offset += piece)
        {
            long length = Math.Min(piece, n - offset);
            var mine = flat.narrow(0, offset, length);
            var rows = gathered.narrow(0, 0, WorldSize * length).view(WorldSize, length);     // (W, length), row r = rank r's piece
            var (count, type) = MpiRuntime.Units(MpiRuntime.Bytes(mine));
            int request;
            MpiNative.Check(MpiNative.Iallgather(MpiRuntime.DataPointer(mine), count, type, MpiRuntime.DataPointer(rows), count, type, _comm, &request), "MPI_Iallgather");
            MpiRuntime.Wait(&request, "MPI_Iallgather");
            // Rank order, as the in-process world adds: ((x0 + x1) + x2) + …
            mine.copy_(rows[0]);
            for (int r = 1; r < WorldSize; r++) mine.add_(rows[r]);
        }
        if (!inPlace) tensor.copy_(flat.view(tensor.shape));
    }

    /// <summary>
    /// An all-to-all in rounds, then the sum in rank order: round k sends rank j the k-th window of
    /// partition j (rows of one (W, window) buffer, padded where a partition is shorter), so memory stays
    /// at one round's buffers whatever the tensor's size, and every element is added as AllReduceSum adds it.
    /// </summary>
    public Tensor ReduceScatterSum(Tensor tensor, IReadOnlyList<long> counts)
    {
        var offsets = ScatterCounts.Offsets(counts, WorldSize, tensor.numel());
        var result = torch.empty(counts[Rank], dtype: tensor.dtype);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var flat = tensor.contiguous().view(-1);
        long longest = counts.Max(), piece = Math.Max(1, AllReduceChunkBytes / (WorldSize * tensor.element_size()));
        var sendBuffer = torch.empty(WorldSize * Math.Min(piece, Math.Max(longest, 1)), dtype: tensor.dtype);
        var recvBuffer = torch.empty_like(sendBuffer);
        for (long start = 0; start < longest; start += piece)
        {
            long width = Math.Min(piece, longest - start);
            long Window(int r) => Math.Clamp(counts[r] - start, 0, width);                   // partition r's elements in this round
            var send = sendBuffer.narrow(0, 0, WorldSize * width).view(WorldSize, width);   // (W, width), row j goes to rank j
            var recv = recvBuffer.narrow(0, 0, WorldSize * width).view(WorldSize, width);   // (W, width), row r came from rank r
            for (int j = 0; j < WorldSize; j++)
                if (Window(j) > 0) send[j].narrow(0, 0, Window(j)).copy_(flat.narrow(0, offsets[j] + start, Window(j)));
            var (count, type) = MpiRuntime.Units(width * tensor.element_size());
            int request;
            MpiNative.Check(MpiNative.Ialltoall(MpiRuntime.DataPointer(send), count, type, MpiRuntime.DataPointer(recv), count, type, _comm, &request), "MPI_Ialltoall");
            MpiRuntime.Wait(&request, "MPI_Ialltoall");
            long mine = Window(Rank);
            if (mine == 0) continue;
            var into = result.narrow(0, start, mine);
            into.copy_(recv[0].narrow(0, 0, mine));
            for (int r = 1; r < WorldSize; r++) into.add_(recv[r].narrow(0, 0, mine));
        }
        return result;
    }

    public Tensor AllGather(Tensor tensor, long dim)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var mine = tensor.contiguous();
        // Every rank's shape first: the gathered tensors may differ along dim (as the in-process world allows).
        var headers = GatherHeaders(mine);
        var shapes = headers.Select(h => h.Shape).ToArray();
        var d = dim < 0 ? dim + mine.dim() : dim;
        for (int r = 0; r < WorldSize; r++)
            if (headers[r].DType != mine.dtype || shapes[r].Length != mine.dim() ||
                Enumerable.Range(0, shapes[r].Length).Any(i => i != d && shapes[r][i] != mine.shape[i]))
                throw new InvalidOperationException(
                    $"all-gather: rank {r} has ({string.Join(", ", shapes[r])}) {headers[r].DType}, rank {Rank} ({string.Join(", ", mine.shape)}) {mine.dtype}");
        long elementSize = mine.element_size();
        var numels = shapes.Select(s => s.Aggregate(1L, (a, b) => a * b)).ToArray();
        var counts = numels.Select(x => checked((int)(x * elementSize))).ToArray();
        var displacements = new int[WorldSize];
        for (int r = 1; r < WorldSize; r++) displacements[r] = checked(displacements[r - 1] + counts[r - 1]);
        var all = torch.empty(numels.Sum(), dtype: mine.dtype);
        int request;
        fixed (int* c = counts, dp = displacements)
        {
            MpiNative.Check(MpiNative.Iallgatherv(MpiRuntime.DataPointer(mine), counts[Rank], MpiNative.Byte,
                MpiRuntime.DataPointer(all), c, dp, MpiNative.Byte, _comm, &request), "MPI_Iallgatherv");
            MpiRuntime.Wait(&request, "MPI_Iallgatherv");
        }
        long offset = 0;
        var parts = new Tensor[WorldSize];
        for (int r = 0; r < WorldSize; r++) { parts[r] = all.narrow(0, offset, numels[r]).view(shapes[r]); offset += numels[r]; }
        // Along dim 0 the rank-major buffer already is the concatenation.
        return scope.MoveToOuter(d == 0 ? all.view([shapes.Sum(s => s[0]), .. mine.shape.Skip(1)]) : torch.cat(parts, d));
    }

    public Tensor AllToAll(Tensor tensor, long scatterDim, long gatherDim)
    {
        var n = WorldSize;
        var d = scatterDim < 0 ? scatterDim + tensor.dim() : scatterDim;
        if (tensor.shape[d] % n != 0)
            throw new ArgumentException($"all-to-all: dimension {scatterDim} has size {tensor.shape[d]}, not divisible by the group size {n}");
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var send = torch.stack(tensor.chunk(n, d), 0).contiguous();                          // (N, chunk…), row j goes to rank j
        var received = torch.empty_like(send);                                               // (N, chunk…), row j came from rank j
        var (count, type) = MpiRuntime.Units(MpiRuntime.Bytes(send) / n);
        int request;
        MpiNative.Check(MpiNative.Ialltoall(MpiRuntime.DataPointer(send), count, type, MpiRuntime.DataPointer(received), count, type, _comm, &request), "MPI_Ialltoall");
        MpiRuntime.Wait(&request, "MPI_Ialltoall");
        return scope.MoveToOuter(torch.cat(received.unbind(0), gatherDim));
    }

    public void Broadcast(Tensor tensor, int root)
    {
        CheckPeer(root, nameof(root));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();
        var (count, type) = MpiRuntime.Units(MpiRuntime.Bytes(buffer));
        int request;
        MpiNative.Check(MpiNative.Ibcast(MpiRuntime.DataPointer(buffer), count, type, root, _comm, &request), "MPI_Ibcast");
        MpiRuntime.Wait(&request, "MPI_Ibcast");
        if (!ReferenceEquals(buffer, tensor)) tensor.copy_(buffer);
    }

    public void Barrier()
    {
        int request;
        MpiNative.Check(MpiNative.Ibarrier(_comm, &request), "MPI_Ibarrier");
        MpiRuntime.Wait(&request, "MPI_Ibarrier");
    }

    public ICollectives Split(IReadOnlyList<int> ranks)
    {
        if (ranks.Count == 0 || ranks.Distinct().Count() != ranks.Count || ranks.Any(r => r < 0 || r >= WorldSize))
            throw new ArgumentException($"split: ranks [{string.Join(", ", ranks)}] must be distinct ranks of this group of {WorldSize}");
        if (!ranks.Contains(Rank)) throw new ArgumentException($"split: rank {Rank} is not in [{string.Join(", ", ranks)}]");
        // MPI_Comm_create_group is collective over the new group's members only, as Split's contract says.
        int parent, group, comm;
        var members = ranks.ToArray();
        MpiNative.Check(MpiNative.CommGroup(_comm, &parent), "MPI_Comm_group");
        fixed (int* m = members) MpiNative.Check(MpiNative.GroupIncl(parent, members.Length, m, &group), "MPI_Group_incl");
        MpiNative.Check(MpiNative.CommCreateGroup(_comm, group, 0, &comm), "MPI_Comm_create_group");
        MpiNative.Check(MpiNative.GroupFree(&group), "MPI_Group_free");
        MpiNative.Check(MpiNative.GroupFree(&parent), "MPI_Group_free");
        return new MpiCollectives(comm, _worldRank);
    }

    private static readonly TimeSpan AbortForwardingPause = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// Reports the failure (one line on stderr that the launcher reads) and ends the whole job: MPI_Abort
    /// makes mpiexec kill every rank, so nobody is left waiting for this one.
    /// </summary>
    public void Abort(Exception reason)
    {
        RankFailureReport.Write(_worldRank, reason);
        // A rank on another host has only that stderr line to tell the launcher why. Hydra's proxy forwards it
        // from a pipe, and MPI_Abort's teardown can kill the proxy before it has: the line was lost in about one
        // launch of ten (SpanningWorldTests). A moment's pause lets the proxy forward it first.
        Thread.Sleep(AbortForwardingPause);
        MpiNative.Abort(MpiNative.CommWorld, 1);
    }

    /// <summary>Waits for every send still in flight (before MPI_Finalize).</summary>
    internal void CompleteSends()
    {
        lock (_sends)
        {
            foreach (var s in _sends)
            {
                fixed (int* r = &s.Request) MpiRuntime.Wait(r, "MPI_Isend");
                s.Buffer.Dispose();
            }
            _sends.Clear();
        }
    }

    private void Post(Tensor buffer, int dst, int tag)
    {
        var send = new PendingSend { Buffer = buffer };
        var (count, type) = MpiRuntime.Units(MpiRuntime.Bytes(buffer));
        lock (_sends)
        {
            fixed (int* r = &send.Request)
                MpiNative.Check(MpiNative.Isend(MpiRuntime.DataPointer(buffer), count, type, dst, tag, _comm, r), "MPI_Isend");
            _sends.Add(send);
        }
    }

    /// <summary>Releases the memory of sends that have completed.</summary>
    private void ReapSends()
    {
        lock (_sends)
            _sends.RemoveAll(s =>
            {
                bool done;
                fixed (int* r = &s.Request) done = MpiRuntime.Test(r, "MPI_Isend");
                if (done) s.Buffer.Dispose();
                return done;
            });
    }

    private static Tensor Header(Tensor t)
    {
        if (t.dim() > HeaderLength - 2) throw new NotSupportedException($"MPI send: tensors of up to {HeaderLength - 2} dimensions; got {t.dim()}");
        var h = new long[HeaderLength];
        (h[0], h[1]) = ((long)t.dtype, t.dim());
        for (int i = 0; i < t.dim(); i++) h[2 + i] = t.shape[i];
        return torch.tensor(h, ScalarType.Int64);
    }

    private static (ScalarType DType, long[] Shape) Parse(ReadOnlySpan<long> h) => ((ScalarType)h[0], h.Slice(2, (int)h[1]).ToArray());

    private (ScalarType DType, long[] Shape) ReceiveHeader(int src, int tag)
    {
        var h = stackalloc long[HeaderLength];
        int request;
        MpiNative.Check(MpiNative.Irecv((nint)h, HeaderLength, MpiNative.LongLong, src, tag, _comm, &request), "MPI_Irecv");
        MpiRuntime.Wait(&request, "MPI_Irecv");
        return Parse(new ReadOnlySpan<long>(h, HeaderLength));
    }

    private void ReceiveInto(Tensor buffer, int src, int tag)
    {
        var (count, type) = MpiRuntime.Units(MpiRuntime.Bytes(buffer));
        int request;
        MpiNative.Check(MpiNative.Irecv(MpiRuntime.DataPointer(buffer), count, type, src, tag, _comm, &request), "MPI_Irecv");
        MpiRuntime.Wait(&request, "MPI_Irecv");
    }

    private (ScalarType DType, long[] Shape)[] GatherHeaders(Tensor mine)
    {
        using var header = Header(mine);
        using var all = torch.empty(WorldSize * HeaderLength, ScalarType.Int64);
        int request;
        MpiNative.Check(MpiNative.Iallgather(MpiRuntime.DataPointer(header), HeaderLength, MpiNative.LongLong,
            MpiRuntime.DataPointer(all), HeaderLength, MpiNative.LongLong, _comm, &request), "MPI_Iallgather");
        MpiRuntime.Wait(&request, "MPI_Iallgather");
        var v = all.data<long>().ToArray();
        return Enumerable.Range(0, WorldSize).Select(r => Parse(v.AsSpan(r * HeaderLength, HeaderLength))).ToArray();
    }

    private void CheckPeer(int peer, string name)
    {
        if (peer < 0 || peer >= WorldSize) throw new ArgumentOutOfRangeException(name, peer, $"group has {WorldSize} ranks");
    }

    /// <summary>A send in flight: its request and the tensor whose memory MPI is reading.</summary>
    private sealed class PendingSend
    {
        public int Request;
        public Tensor Buffer = null!;
    }
}
