using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// <see cref="ICollectives"/> for ranks that are threads of one process. Point-to-point messages are
/// copies queued in per-(sender, receiver, tag) mailboxes, so a send never blocks. Collectives use a
/// shared slot per rank between two barriers: every rank puts its tensor in its slot, all read, and
/// nobody touches its tensor again until everyone has read. Every blocking wait gives up on the world's
/// timeout or when another rank fails.
/// </summary>
public sealed class InProcessCollectives : ICollectives
{
    private readonly InProcessWorld _world;
    private readonly int[] _members; // global rank of each member, index = rank in this group
    private readonly InProcessWorld.GroupState _group;

    internal InProcessCollectives(InProcessWorld world, int[] members, int rank)
    {
        _world = world;
        _members = members;
        _group = world.Group(members);
        Rank = rank;
    }

    public int Rank { get; }

    public int WorldSize => _members.Length;

    private int GlobalRank => _members[Rank];

    public void Send(Tensor tensor, int dst, int tag = 0)
    {
        CheckPeer(dst, nameof(dst));
        if (_world.AbortToken.IsCancellationRequested) throw _world.Aborted(GlobalRank, $"sending to rank {dst}");
        // The receiver owns the copy: it must not be disposed with the sender's scope.
        using var _ = torch.no_grad();
        using var detached = tensor.detach();
        var copy = detached.clone().DetachFromDisposeScope();
        _world.Mailbox(_group.Key, Rank, dst, tag).Add(copy);
    }

    public Tensor Recv(int src, int tag = 0)
    {
        CheckPeer(src, nameof(src));
        var mailbox = _world.Mailbox(_group.Key, src, Rank, tag);
        Tensor? message;
        try
        {
            if (!mailbox.TryTake(out message, (int)Math.Min(int.MaxValue, _world.ReceiveTimeout.TotalMilliseconds), _world.AbortToken))
                throw new TimeoutException($"rank {Rank} of group [{_group.Key}] waited {_world.ReceiveTimeout} for a message from rank {src} (tag {tag})");
        }
        catch (OperationCanceledException)
        {
            throw _world.Aborted(GlobalRank, $"a message from rank {src} (tag {tag})");
        }
        torch.CurrentDisposeScope?.Attach(message!);
        return message!;
    }

    public void RecvInto(Tensor buffer, int src, int tag = 0)
    {
        using var message = Recv(src, tag);
        if (!message.shape.SequenceEqual(buffer.shape) || message.dtype != buffer.dtype)
            throw new InvalidOperationException(
                $"rank {Rank} expected ({string.Join(", ", buffer.shape)}) {buffer.dtype} from rank {src} but got ({string.Join(", ", message.shape)}) {message.dtype}");
        using var _ = torch.no_grad();
        buffer.copy_(message);
    }

    public void AllReduceSum(Tensor tensor)
    {
        using var _ = torch.no_grad();
        // Every rank adds the same tensors in the same (rank) order: bit-identical results everywhere.
        using var sum = Exchange(tensor, slots =>
        {
            var acc = slots[0].clone();
            for (var i = 1; i < slots.Length; i++) acc.add_(slots[i]);
            return acc;
        });
        tensor.copy_(sum); // only after the second barrier: peers read our tensor until then
    }

    public Tensor ReduceScatterSum(Tensor tensor, IReadOnlyList<long> counts)
    {
        var offsets = ScatterCounts.Offsets(counts, WorldSize, tensor.numel());
        var (start, length) = (offsets[Rank], counts[Rank]);
        using var _ = torch.no_grad();
        // The same additions as AllReduceSum, on this rank's part only: rank order, so the same bits.
        return Exchange(tensor, slots =>
        {
            using var scope = torch.NewDisposeScope();
            var parts = slots.Select(s => s.reshape(-1).narrow(0, start, length)).ToArray();
            var acc = parts[0].clone();
            for (var i = 1; i < parts.Length; i++) acc.add_(parts[i]);
            return scope.MoveToOuter(acc);
        });
    }

    public Tensor AllGather(Tensor tensor, long dim)
    {
        using var _ = torch.no_grad();
        return Exchange(tensor, slots => torch.cat(slots, dim));
    }

    public Tensor AllToAll(Tensor tensor, long scatterDim, long gatherDim)
    {
        var n = WorldSize;
        var d = scatterDim < 0 ? scatterDim + tensor.dim() : scatterDim;
        if (tensor.shape[d] % n != 0)
            throw new ArgumentException($"all-to-all: dimension {scatterDim} has size {tensor.shape[d]}, not divisible by the group size {n}");
        using var _ = torch.no_grad();
        return Exchange(tensor, slots =>
        {
            using var scope = torch.NewDisposeScope();
            var mine = slots.Select(s => s.chunk(n, scatterDim)[Rank]).ToArray(); // from each rank, the chunk meant for us
            return scope.MoveToOuter(torch.cat(mine, gatherDim));
        });
    }

    public void Broadcast(Tensor tensor, int root)
    {
        CheckPeer(root, nameof(root));
        using var _ = torch.no_grad();
        Exchange(tensor, slots =>
        {
            if (Rank != root) tensor.copy_(slots[root]);
            return 0;
        });
    }

    public void Barrier() => Wait("the barrier");

    public ICollectives Split(IReadOnlyList<int> ranks)
    {
        if (ranks.Count == 0 || ranks.Distinct().Count() != ranks.Count || ranks.Any(r => r < 0 || r >= WorldSize))
            throw new ArgumentException($"split: ranks [{string.Join(", ", ranks)}] must be distinct ranks of this group of {WorldSize}");
        var members = ranks.Select(r => _members[r]).ToArray();
        var rank = Array.IndexOf(members, GlobalRank);
        if (rank < 0) throw new ArgumentException($"split: rank {Rank} is not in [{string.Join(", ", ranks)}]");
        return new InProcessCollectives(_world, members, rank);
    }

    public void Abort(Exception reason) => _world.Fail(GlobalRank, reason);

    /// <summary>Slot exchange: publish, wait for all, combine (reading peers' tensors), wait for all.</summary>
    private T Exchange<T>(Tensor mine, Func<Tensor[], T> combine)
    {
        _group.Slots[Rank] = mine;
        Wait("a collective");
        var result = combine(_group.Slots.Select(s => s!).ToArray());
        Wait("a collective");
        return result;
    }

    private void Wait(string what)
    {
        try
        {
            if (!_group.Barrier.SignalAndWait(_world.ReceiveTimeout, _world.AbortToken))
                throw new TimeoutException($"rank {Rank} of group [{_group.Key}] waited {_world.ReceiveTimeout} at {what}");
        }
        catch (OperationCanceledException)
        {
            throw _world.Aborted(GlobalRank, what);
        }
    }

    private void CheckPeer(int peer, string name)
    {
        if (peer < 0 || peer >= WorldSize) throw new ArgumentOutOfRangeException(name, peer, $"group has {WorldSize} ranks");
    }
}
