using System.Diagnostics;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Time one rank spends in attention, forward and backward, and how much of it was spent blocked
/// waiting for peers. Thread-safe; share one per rank across layers. Read by the benchmark and
/// progress reporting.
/// </summary>
public sealed class AttentionTimer
{
    private long _forwardTicks, _backwardTicks, _waitTicks;

    public TimeSpan Forward => TimeSpan.FromTicks(Interlocked.Read(ref _forwardTicks));

    public TimeSpan Backward => TimeSpan.FromTicks(Interlocked.Read(ref _backwardTicks));

    /// <summary>Part of Forward + Backward spent blocked in receives and collectives.</summary>
    public TimeSpan CommunicationWait => TimeSpan.FromTicks(Interlocked.Read(ref _waitTicks));

    public TimeSpan Total => Forward + Backward;

    /// <summary>A timer holding figures measured elsewhere (a rank that ran as its own process).</summary>
    public static AttentionTimer FromSeconds(double forward, double backward, double wait) => new()
    {
        _forwardTicks = TimeSpan.FromSeconds(forward).Ticks,
        _backwardTicks = TimeSpan.FromSeconds(backward).Ticks,
        _waitTicks = TimeSpan.FromSeconds(wait).Ticks,
    };

    public void Reset()
    {
        Interlocked.Exchange(ref _forwardTicks, 0);
        Interlocked.Exchange(ref _backwardTicks, 0);
        Interlocked.Exchange(ref _waitTicks, 0);
    }

    public T TimeForward<T>(Func<T> body) => Time(ref _forwardTicks, body);

    public T TimeBackward<T>(Func<T> body) => Time(ref _backwardTicks, body);

    public T TimeWait<T>(Func<T> body) => Time(ref _waitTicks, body);

    private static T Time<T>(ref long ticks, Func<T> body)
    {
        var start = Stopwatch.GetTimestamp();
        try { return body(); }
        finally { Interlocked.Add(ref ticks, Stopwatch.GetElapsedTime(start).Ticks); }
    }
}
