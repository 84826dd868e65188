namespace LongSeqService.Shared.Data;

/// <summary>
/// The <c>val_size</c> split: a fraction in (0, 1) (rounded up, as Hugging Face's train_test_split does)
/// or a whole number of examples held out for evaluation. Which examples are held out depends only on the
/// seed (a SplitMix64 Fisher–Yates shuffle, stable across .NET versions); both parts keep the file's order.
/// </summary>
public static class DataSplit
{
    public static (List<T> Train, List<T> Val) TrainVal<T>(IReadOnlyList<T> items, double valSize, ulong seed)
    {
        int n = items.Count;
        int nVal = valSize switch
        {
            <= 0 => 0,
            < 1 => (int)Math.Ceiling(valSize * n),
            _ when valSize == Math.Floor(valSize) => (int)valSize,
            _ => throw new ArgumentOutOfRangeException(nameof(valSize), valSize, "val_size must be a fraction in (0, 1) or a whole number of examples"),
        };
        if (nVal == 0) return ([.. items], []);
        if (nVal >= n)
            throw new ArgumentOutOfRangeException(nameof(valSize), valSize,
                $"val_size {valSize} leaves no training examples out of {n}; use a smaller val_size");

        var order = Enumerable.Range(0, n).ToArray();
        var state = seed;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(SplitMix64(ref state) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        var isVal = new bool[n];
        foreach (var k in order.Take(nVal)) isVal[k] = true;
        var train = new List<T>(n - nVal);
        var val = new List<T>(nVal);
        for (int k = 0; k < n; k++) (isVal[k] ? val : train).Add(items[k]);
        return (train, val);
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
