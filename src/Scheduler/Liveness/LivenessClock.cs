namespace LongSeqService.Scheduler.Liveness;

/// <summary>
/// What the liveness sweep may count as a host's silence: only time the service could hear it. A sweep
/// that runs after a gap (this process just started, or the database was away so sweeps failed) opens a
/// grace period of one host timeout, so hosts that heartbeated into a dead API get a fair chance to be
/// heard before anyone is declared lost. One per process; with several scheduler processes each keeps
/// its own, which only makes them more patient.
/// </summary>
public sealed class LivenessClock(TimeProvider time)
{
    private readonly object _gate = new();
    private DateTime? _lastSweep;
    private DateTime _heardSince = DateTime.MinValue;

    /// <summary>Called at the start of every sweep whose database work will follow; returns the earliest
    /// time since which this service has been listening without a gap longer than <paramref name="gap"/>.</summary>
    public DateTime Sweep(TimeSpan gap)
    {
        var now = time.GetUtcNow().UtcDateTime;
        lock (_gate)
        {
            if (_lastSweep == null || now - _lastSweep.Value > gap) _heardSince = now;
            return _heardSince;
        }
    }

    /// <summary>The sweep's database work succeeded: the service was listening up to now.</summary>
    public void Succeeded()
    {
        var now = time.GetUtcNow().UtcDateTime;
        lock (_gate) _lastSweep = now;
    }
}
