namespace LongSeqService.Trainer.Training;

/// <summary>
/// Which examples each optimizer step, micro-batch and data-parallel replica sees — a pure function of
/// the seed and the step, so a resumed run needs only the step number to continue exactly.
/// Like Hugging Face's Trainer: every epoch is a fresh seeded shuffle cut into micro-batches of
/// <c>batch × dp</c> examples (the last one may be short); an optimizer step is
/// <c>gradient_accumulation_steps</c> micro-batches; leftover micro-batches at an epoch's end are dropped.
/// </summary>
public sealed class DataSchedule
{
    private readonly int _n, _batch, _dp, _gradAcc, _seed;
    private readonly Dictionary<int, int[]> _orders = new();

    public int MicroBatchesPerEpoch { get; }
    public int StepsPerEpoch { get; }
    public int TotalSteps { get; }
    public int GradientAccumulationSteps => _gradAcc;

    public DataSchedule(int numExamples, int batchPerDevice, int dataParallel, int gradAcc, double epochs, int maxSteps, int seed)
    {
        if (numExamples < 1) throw new ArgumentException("no training examples");
        (_n, _batch, _dp, _gradAcc, _seed) = (numExamples, batchPerDevice, dataParallel, gradAcc, seed);
        MicroBatchesPerEpoch = (numExamples + batchPerDevice * dataParallel - 1) / (batchPerDevice * dataParallel);
        StepsPerEpoch = Math.Max(1, MicroBatchesPerEpoch / gradAcc);
        TotalSteps = maxSteps > 0 ? maxSteps : Math.Max(1, (int)Math.Ceiling(epochs * StepsPerEpoch));
    }

    /// <summary>Epoch count after <paramref name="stepsDone"/> optimizer steps (fractional, as logged).</summary>
    public double EpochAt(int stepsDone) => (double)stepsDone / StepsPerEpoch;

    /// <summary>Example indices for one replica's micro-batch; empty when the epoch's tail has none left for it.</summary>
    public int[] Examples(int step, int micro, int dpRank)
    {
        int epoch = step / StepsPerEpoch;
        int localMicro = (step % StepsPerEpoch) * _gradAcc + micro;
        var order = Order(epoch);
        int start = localMicro * _batch * _dp + dpRank * _batch;
        int end = Math.Min(start + _batch, _n);
        return start >= end ? [] : order[start..end];
    }

    private int[] Order(int epoch)
    {
        lock (_orders)
        {
            if (_orders.TryGetValue(epoch, out var o)) return o;
            o = Enumerable.Range(0, _n).ToArray();
            new Random(unchecked(_seed * 1_000_003 + epoch)).Shuffle(o);   // seeded System.Random is stable across runs
            _orders[epoch] = o;
            return o;
        }
    }
}
