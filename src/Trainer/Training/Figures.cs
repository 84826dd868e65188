using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>Reductions of the double figures that objectives report.</summary>
public static class Figures
{
    /// <summary>Element-wise sums of <paramref name="values"/> over <paramref name="group"/> (a collective).</summary>
    public static double[] SumDoubles(this ICollectives group, params double[] values)
    {
        using var t = tensor(values, ScalarType.Float64);
        group.AllReduceSum(t);
        return t.data<double>().ToArray();
    }
}
