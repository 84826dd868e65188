using LongSeqService.Trainer.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Each rank's memory: the baseline once its model is loaded, and the peak so far. With ranks as threads
/// the figures are the shared process's (one address space); with one process per rank they are that
/// rank's own — which is what a per-device memory claim needs.
/// </summary>
public sealed class RankMemory(ICollectives world)
{
    private readonly long _baseline = NativeMemory.ResidentBytes();

    /// <summary>Peaks and baselines of every rank, in world order (a collective: every rank calls it).</summary>
    public (long[] Peaks, long[] Baselines) Gather()
    {
        using var mine = tensor(new[] { NativeMemory.PeakResidentBytes(), _baseline }, ScalarType.Int64).unsqueeze(0);   // (1, 2)
        using var all = world.AllGather(mine, 0);                                                                           // (W, 2)
        var v = all.data<long>().ToArray();
        return (Enumerable.Range(0, world.WorldSize).Select(r => v[2 * r]).ToArray(),
                Enumerable.Range(0, world.WorldSize).Select(r => v[2 * r + 1]).ToArray());
    }
}
