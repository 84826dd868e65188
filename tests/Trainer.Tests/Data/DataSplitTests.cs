using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class DataSplitTests
{
    private static readonly int[] Items = Enumerable.Range(0, 100).ToArray();

    [Fact]
    public void TrainVal_Fraction_CeilCountDisjointOrdered()
    {
        var (train, val) = DataSplit.TrainVal(Items, 0.105, seed: 42);

        Assert.Equal(11, val.Count); // ceil(10.5)
        Assert.Equal(89, train.Count);
        Assert.Equal(Items, train.Concat(val).Order());
        Assert.Equal(val.Order(), val);
        Assert.Equal(train.Order(), train);
    }

    [Fact]
    public void TrainVal_SameSeed_SameSplit_OtherSeed_Different()
    {
        var a = DataSplit.TrainVal(Items, 10, seed: 7).Val;
        var b = DataSplit.TrainVal(Items, 10, seed: 7).Val;
        var c = DataSplit.TrainVal(Items, 10, seed: 8).Val;

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(Enumerable.Range(0, 10), a); // actually shuffled, not the first rows
    }

    [Fact]
    public void TrainVal_Zero_AllTrain()
    {
        var (train, val) = DataSplit.TrainVal(Items, 0, seed: 1);
        Assert.Equal(Items, train);
        Assert.Empty(val);
    }

    [Theory]
    [InlineData(100)]
    [InlineData(1.5)]
    public void TrainVal_Impossible_Throws(double valSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DataSplit.TrainVal(Items, valSize, seed: 1));
    }
}
