using TorchSharp;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class CollatorTests
{
    private static readonly EncodedSequence A = new([5, 6, 7], [-100, 6, 7]);
    private static readonly EncodedSequence B = new([8, 9, 10, 11, 12], [-100, -100, 10, 11, 12]);

    [Fact]
    public void Collate_TwoLengths_RightPaddedToLongest()
    {
        using var batch = new Collator(padId: 0).Collate([A, B]);

        Assert.Equal([2L, 5L], batch.InputIds.shape);
        Assert.Equal(torch.ScalarType.Int64, batch.InputIds.dtype);
        Assert.Equal([5L, 6, 7, 0, 0, 8, 9, 10, 11, 12], batch.InputIds.data<long>().ToArray());
        Assert.Equal([-100L, 6, 7, -100, -100, -100, -100, 10, 11, 12], batch.Labels.data<long>().ToArray());
        Assert.Equal([0L, 1, 2, 3, 4, 0, 1, 2, 3, 4], batch.PositionIds.data<long>().ToArray());
    }

    [Fact]
    public void Collate_MultipleOfFour_PadsTo8()
    {
        using var batch = new Collator(padId: 99, padToMultipleOf: 4).Collate([A, B]);

        Assert.Equal([2L, 8L], batch.InputIds.shape);
        Assert.Equal([8L, 9, 10, 11, 12, 99, 99, 99], batch.InputIds[1].data<long>().ToArray());
        Assert.Equal([-100L, -100, 10, 11, 12, -100, -100, -100], batch.Labels[1].data<long>().ToArray());
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), batch.PositionIds[0].data<long>().ToArray());
    }

    [Fact]
    public void Collate_ShiftLabels_LabelAtTIsTokenAtTPlusOne()
    {
        using var batch = new Collator(padId: 0, padToMultipleOf: 2, shiftLabels: true).Collate([B]);

        Assert.Equal([8L, 9, 10, 11, 12, 0], batch.InputIds[0].data<long>().ToArray());
        Assert.Equal([-100L, 10, 11, 12, -100, -100], batch.Labels[0].data<long>().ToArray());
    }

    [Fact]
    public void CollatePairs_ChosenRowsThenRejectedRows()
    {
        var pairs = new[] { new EncodedPair(A, B, 1), new EncodedPair(B, A, 1) };

        using var batch = new Collator(padId: 0).CollatePairs(pairs);

        Assert.Equal([4L, 5L], batch.InputIds.shape);
        Assert.Equal([5L, 6, 7, 0, 0], batch.InputIds[0].data<long>().ToArray()); // chosen 0
        Assert.Equal([8L, 9, 10, 11, 12], batch.InputIds[1].data<long>().ToArray()); // chosen 1
        Assert.Equal([8L, 9, 10, 11, 12], batch.InputIds[2].data<long>().ToArray()); // rejected 0
        Assert.Equal([5L, 6, 7, 0, 0], batch.InputIds[3].data<long>().ToArray()); // rejected 1
    }

    [Fact]
    public void For_BuiltinTokenizer_PadsWithItsPadToken()
    {
        var tok = TestTokenizer.Builtin;
        Assert.Equal(tok.PadId, Collator.For(tok).PadId);
    }
}
