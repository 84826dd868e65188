using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class SequencePackerTests
{
    private const int I = EncodedSequence.IgnoreIndex;

    [Fact]
    public void Pack_Neat_ShiftsLabelsWithinEachExampleAndRestartsPositions()
    {
        var a = new EncodedSequence([1, 2, 3], [I, 2, 3]);
        var b = new EncodedSequence([4, 5], [4, 5]);
        var row = Assert.Single(SequencePacker.Pack([a, b], cutoffLen: 8, neat: true));

        Assert.Equal([1, 2, 3, 4, 5], row.InputIds);
        Assert.Equal([2, 3, I, 5, I], row.ShiftedLabels); // 3 never predicts 4: the label does not cross the boundary
        Assert.Equal([0, 1, 2, 0, 1], row.PositionIds);
        Assert.Equal([0, 0, 0, 1, 1], row.DocumentIds);
        Assert.Equal([0, 1], row.Examples);
    }

    [Fact]
    public void Pack_Neat_FillsRowsFirstFitByDecreasingLengthAndKeepsEveryExampleOnce()
    {
        var lengths = new[] { 7, 3, 5, 2, 6, 1, 4 };
        var examples = lengths.Select(n => new EncodedSequence(Enumerable.Repeat(n, n).ToArray(), Enumerable.Repeat(n, n).ToArray())).ToList();
        var rows = SequencePacker.Pack(examples, cutoffLen: 8, neat: true);

        Assert.All(rows, r => Assert.True(r.Length <= 8));
        Assert.Equal(Enumerable.Range(0, lengths.Length), rows.SelectMany(r => r.Examples).Order());
        Assert.Equal(4, rows.Count); // 28 tokens in rows of 8: 7+1, 6+2, 5+3, 4
        Assert.Equal(examples.Sum(e => e.LabelCount - 1), rows.Sum(r => r.LabelCount)); // each example's first label is never predicted
    }

    [Fact]
    public void Pack_Neat_ExampleLongerThanCutoff_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => SequencePacker.Pack([new EncodedSequence([1, 2, 3], [1, 2, 3])], cutoffLen: 2, neat: true));
        Assert.Contains("cutoff_len 2", e.Message);
    }

    [Fact]
    public void Pack_Concatenated_CutsTheStreamIntoFullRowsWithNextTokenLabels()
    {
        var docs = new[] { new EncodedSequence([1, 2, 3], [1, 2, 3]), new EncodedSequence([4, 5, 6, 7], [4, 5, 6, 7]) };
        var rows = SequencePacker.Pack(docs, cutoffLen: 3, neat: false);

        Assert.Equal(2, rows.Count); // 7 tokens: two rows of 3, the last token dropped
        Assert.Equal([4, 5, 6], rows[1].InputIds);
        Assert.Equal([2, 3, I], rows[0].ShiftedLabels);
        Assert.Equal([0, 1, 2], rows[1].PositionIds);
        Assert.Equal([0, 0, 0], rows[1].DocumentIds);
        Assert.Equal([1], rows[1].Examples);
    }

    [Fact]
    public void CollatePacked_PadsAsItsOwnDocumentWithoutLabels()
    {
        var row = Assert.Single(SequencePacker.Pack([new EncodedSequence([1, 2, 3], [1, 2, 3])], cutoffLen: 4, neat: true));
        using var batch = new Collator(padId: 0, padToMultipleOf: 4).CollatePacked([row]);

        Assert.Equal([1L, 2, 3, 0], batch.InputIds.data<long>().ToArray());
        Assert.Equal([2L, 3, I, I], batch.Labels.data<long>().ToArray());
        Assert.Equal([0L, 0, 0, -1], batch.DocumentIds!.data<long>().ToArray());
    }
}
