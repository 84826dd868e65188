using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Each rank's memory: the baseline once its model is loaded, and the peak so far. With ranks as threads
/// the figures are the shared process's (one address space); with one process per rank they are that
/// rank's own — which is what a per-device memory claim needs.
/// </summary>
public sealed class RankMemory
{
    private readonly ICollectives _world;
    private readonly long _baseline;

    /// <param name="resetPeak">The rank is a process of its own: hand freed pages back and restart VmHWM
    /// here, so the peak is the step's, not start-up's (loading can briefly hold more than training).</param>
    public RankMemory(ICollectives world, bool resetPeak = false)
    {
        _world = world;
        if (resetPeak)
        {
            NativeMemory.Trim();
            NativeMemory.ResetPeak();
        }
        _baseline = NativeMemory.ResidentBytes();
    }

    /// <summary>Peaks and baselines of every rank, in world order (a collective: every rank calls it).</summary>
    public (long[] Peaks, long[] Baselines) Gather()
    {
        using var mine = tensor(new[] { NativeMemory.PeakResidentBytes(), _baseline }, ScalarType.Int64).unsqueeze(0);   // (1, 2)
        using var all = _world.AllGather(mine, 0);                                                                           // (W, 2)
        var v = all.data<long>().ToArray();
        return (Enumerable.Range(0, _world.WorldSize).Select(r => v[2 * r]).ToArray(),
                Enumerable.Range(0, _world.WorldSize).Select(r => v[2 * r + 1]).ToArray());
    }
}
