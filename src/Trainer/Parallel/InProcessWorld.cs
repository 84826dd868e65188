using System.Collections.Concurrent;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// A world of ranks that are threads of this process. Holds what the ranks share: mailboxes for
/// point-to-point messages, one exchange area and barrier per group, and the world's failure state
/// (the first failure cancels every blocking wait, so one failing rank never leaves the others hanging).
/// </summary>
public sealed class InProcessWorld
{
    private readonly ConcurrentDictionary<(string Group, int Src, int Dst, int Tag), BlockingCollection<TorchSharp.torch.Tensor>> _mailboxes = new();
    private readonly ConcurrentDictionary<string, GroupState> _groups = new();
    private readonly CancellationTokenSource _aborted = new();
    private readonly object _failureLock = new();

    public InProcessWorld(int size, TimeSpan? receiveTimeout = null)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "a world needs at least one rank");
        Size = size;
        ReceiveTimeout = receiveTimeout ?? TimeSpan.FromMinutes(10);
    }

    public int Size { get; }

    /// <summary>How long a blocking receive or collective waits before it declares the world stuck.</summary>
    public TimeSpan ReceiveTimeout { get; }

    /// <summary>The first failure (global rank and exception), or null while the world is healthy.</summary>
    public (int Rank, Exception Exception)? Failure { get; private set; }

    internal CancellationToken AbortToken => _aborted.Token;

    /// <summary>The collectives of global rank <paramref name="rank"/> over the whole world.</summary>
    public ICollectives Collectives(int rank)
    {
        if (rank < 0 || rank >= Size) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"world has {Size} ranks");
        return new InProcessCollectives(this, Enumerable.Range(0, Size).ToArray(), rank);
    }

    /// <summary>
    /// Records the first failure and cancels every blocking wait. Later failures are ignored: they are
    /// normally consequences of the first (a peer that was waiting for the failed rank).
    /// </summary>
    public void Fail(int rank, Exception exception)
    {
        lock (_failureLock)
        {
            if (Failure is not null) return;
            Failure = (rank, exception);
        }
        _aborted.Cancel();
    }

    internal BlockingCollection<TorchSharp.torch.Tensor> Mailbox(string group, int src, int dst, int tag) =>
        _mailboxes.GetOrAdd((group, src, dst, tag), _ => new BlockingCollection<TorchSharp.torch.Tensor>());

    internal GroupState Group(int[] globalRanks) =>
        _groups.GetOrAdd(string.Join(",", globalRanks), key => new GroupState(key, globalRanks.Length));

    internal CollectiveAbortedException Aborted(int rank, string waitingFor)
    {
        var failure = Failure;
        var why = failure is { } f ? $"rank {f.Rank} failed ({f.Exception.GetType().Name}: {f.Exception.Message})" : "the world was aborted";
        return new CollectiveAbortedException($"rank {rank} stopped waiting for {waitingFor}: {why}", failure?.Exception);
    }

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="worldSize"/> rank threads and waits for all. If a
    /// rank throws, the others are woken from their waits and the first failure is rethrown as a
    /// <see cref="RankFailedException"/>.
    /// </summary>
    public static void Run(int worldSize, Action<ICollectives> body, TimeSpan? receiveTimeout = null) =>
        Run(worldSize, c => { body(c); return 0; }, receiveTimeout);

    /// <summary>As <see cref="Run(int, Action{ICollectives}, TimeSpan?)"/>, returning each rank's result (index = rank).
    /// Tensors returned must outlive the rank thread's dispose scopes (detach them from any scope).</summary>
    public static T[] Run<T>(int worldSize, Func<ICollectives, T> body, TimeSpan? receiveTimeout = null)
    {
        var world = new InProcessWorld(worldSize, receiveTimeout);
        var results = new T[worldSize];
        var threads = Enumerable.Range(0, worldSize).Select(rank => new Thread(() =>
        {
            try { results[rank] = body(world.Collectives(rank)); }
            catch (Exception e) { world.Fail(rank, e); }
        }) { IsBackground = true, Name = $"rank-{rank}" }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (world.Failure is { } failure) throw new RankFailedException(failure.Rank, failure.Exception);
        return results;
    }

    /// <summary>What the members of one group share for collectives: one slot per rank and a barrier.</summary>
    internal sealed class GroupState(string key, int size)
    {
        public string Key { get; } = key;
        public TorchSharp.torch.Tensor?[] Slots { get; } = new TorchSharp.torch.Tensor?[size];
        public Barrier Barrier { get; } = new(size);
    }
}
