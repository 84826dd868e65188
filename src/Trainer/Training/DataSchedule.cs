namespace LongSeqService.Trainer.Training;

/// <summary>
/// Which examples each optimizer step, micro-batch and data-parallel replica sees — a pure function of
/// the seed and the step, so a resumed run needs only the step number to continue exactly.
/// Like Hugging Face's Trainer: every epoch is a fresh seeded shuffle cut into micro-batches of
/// <c>batch × dp</c> examples (the last one may be short); an optimizer step is
/// <c>gradient_accumulation_steps</c> micro-batches; leftover micro-batches at an epoch's end are dropped.
/// With a token budget (<see cref="ByTokens"/>) the shuffled units are fixed batches of examples of
/// similar length, each holding at most the budget in padded tokens, and a replica's micro-batch is one
/// such batch.
/// </summary>
public sealed class DataSchedule
{
    private readonly int _n, _batch, _dp, _gradAcc, _seed;
    private readonly Dictionary<int, int[]> _orders = new();
    private readonly int[][]? _tokenBatches;      // token budget: the examples of each unit

    public int MicroBatchesPerEpoch { get; }
    public int StepsPerEpoch { get; }
    public int TotalSteps { get; }
    public int GradientAccumulationSteps => _gradAcc;

    private DataSchedule(int[][] tokenBatches, int dataParallel, int gradAcc, double epochs, int maxSteps, int seed)
        : this(tokenBatches.Length, 1, dataParallel, gradAcc, epochs, maxSteps, seed) => _tokenBatches = tokenBatches;

    /// <summary>
    /// Micro-batches filled by tokens, not rows: examples sorted by length are cut greedily into batches
    /// whose padded size (rows × longest, the length rounded up to <paramref name="padMultiple"/>) stays
    /// within <paramref name="maxTokensPerBatch"/>; an example longer than the budget is a batch alone.
    /// Batches are fixed for the run (their order is shuffled per epoch), so steps per epoch are too.
    /// </summary>
    public static DataSchedule ByTokens(IReadOnlyList<int> lengths, long maxTokensPerBatch, int padMultiple, int dataParallel, int gradAcc,
        double epochs, int maxSteps, int seed)
    {
        if (maxTokensPerBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxTokensPerBatch), maxTokensPerBatch, "the token budget must be positive");
        var batches = new List<int[]>();
        var current = new List<int>();
        foreach (var i in Enumerable.Range(0, lengths.Count).OrderBy(i => lengths[i]).ThenBy(i => i))
        {
            long padded = (lengths[i] + padMultiple - 1) / padMultiple * (long)padMultiple; // sorted: the longest so far
            if (current.Count > 0 && (current.Count + 1) * padded > maxTokensPerBatch)
            {
                batches.Add([.. current]);
                current.Clear();
            }
            current.Add(i);
        }
        if (current.Count > 0) batches.Add([.. current]);
        return new DataSchedule([.. batches], dataParallel, gradAcc, epochs, maxSteps, seed);
    }

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
        if (start >= end) return [];
        return _tokenBatches is null ? order[start..end] : _tokenBatches[order[start]];
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
