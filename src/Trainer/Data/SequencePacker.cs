using LongSeqService.Shared.Data;

namespace LongSeqService.Trainer.Data;

/// <summary>
/// One packed training row: several examples concatenated. Labels are already shifted
/// (<c>ShiftedLabels[t]</c> is the token the model must predict after token t), so no label crosses an
/// example boundary unless the packing chose so; position ids and document ids say where each example
/// starts (document ids drive the attention mask, see <c>PackedDocuments</c>).
/// </summary>
public sealed record PackedRow(int[] InputIds, int[] ShiftedLabels, int[] PositionIds, int[] DocumentIds, int[] Examples)
{
    public int Length => InputIds.Length;

    /// <summary>Tokens that carry a loss.</summary>
    public int LabelCount => ShiftedLabels.Count(l => l != EncodedSequence.IgnoreIndex);
}

/// <summary>
/// Packs encoded examples into rows of at most <c>cutoff_len</c> tokens.
/// <list type="bullet">
/// <item><b>Neat</b> (<c>neat_packing</c>, and SFT packing by default): whole examples placed first-fit
/// by decreasing length (LLaMA-Factory's greedy knapsack, deterministic); each example keeps its own
/// shifted labels (its last token predicts nothing), its position ids restart at 0, and it is its own
/// document, so attention never crosses it. Training on a packed row is exactly training on its
/// examples one by one.</item>
/// <item><b>Concatenated</b> (<c>stage: pt</c> without <c>neat_packing</c>, LLaMA-Factory's pre-training
/// packing): the examples in order form one token stream cut into rows of exactly cutoff_len (the
/// remainder dropped); every label is the next token of the stream, positions run 0..cutoff_len−1 and
/// the row is one document — documents attend to the earlier ones in their row, as in LLaMA-Factory.</item>
/// </list>
/// </summary>
public static class SequencePacker
{
    public static IReadOnlyList<PackedRow> Pack(IReadOnlyList<EncodedSequence> examples, int cutoffLen, bool neat)
    {
        if (cutoffLen < 2) throw new ArgumentOutOfRangeException(nameof(cutoffLen), cutoffLen, "packing needs cutoff_len of at least 2");
        return neat ? PackNeat(examples, cutoffLen) : PackConcatenated(examples, cutoffLen);
    }

    private static List<PackedRow> PackNeat(IReadOnlyList<EncodedSequence> examples, int cutoffLen)
    {
        var bins = new List<(int Used, List<int> Items)>();
        var order = Enumerable.Range(0, examples.Count).OrderByDescending(i => examples[i].Length).ThenBy(i => i);
        foreach (var i in order)
        {
            var len = examples[i].Length;
            if (len > cutoffLen) throw new ArgumentException($"example {i} has {len} tokens, more than cutoff_len {cutoffLen} (truncate before packing)");
            var bin = bins.FindIndex(b => b.Used + len <= cutoffLen);
            if (bin < 0) bins.Add((len, [i]));
            else bins[bin] = (bins[bin].Used + len, [.. bins[bin].Items, i]);
        }
        // Rows in the order of their first example, examples in their original order within a row.
        return bins.Select(b => b.Items.Order().ToArray()).OrderBy(items => items[0]).Select(items => NeatRow(examples, items)).ToList();
    }

    private static PackedRow NeatRow(IReadOnlyList<EncodedSequence> examples, int[] items)
    {
        int total = items.Sum(i => examples[i].Length);
        var (ids, labels, positions, docs) = (new int[total], new int[total], new int[total], new int[total]);
        int offset = 0;
        for (int d = 0; d < items.Length; d++)
        {
            var s = examples[items[d]];
            for (int t = 0; t < s.Length; t++)
            {
                ids[offset + t] = s.InputIds[t];
                labels[offset + t] = t + 1 < s.Length ? s.Labels[t + 1] : EncodedSequence.IgnoreIndex; // shifted within the example
                positions[offset + t] = t;
                docs[offset + t] = d;
            }
            offset += s.Length;
        }
        return new PackedRow(ids, labels, positions, docs, items);
    }

    private static List<PackedRow> PackConcatenated(IReadOnlyList<EncodedSequence> examples, int cutoffLen)
    {
        var stream = examples.SelectMany(s => s.InputIds).ToArray();
        var streamLabels = examples.SelectMany(s => s.Labels).ToArray();
        var owner = examples.SelectMany((s, i) => Enumerable.Repeat(i, s.Length)).ToArray();
        var rows = new List<PackedRow>();
        for (int start = 0; start + cutoffLen <= stream.Length; start += cutoffLen)
        {
            var ids = stream[start..(start + cutoffLen)];
            var labels = new int[cutoffLen];
            for (int t = 0; t < cutoffLen; t++)
                labels[t] = t + 1 < cutoffLen ? streamLabels[start + t + 1] : EncodedSequence.IgnoreIndex; // the row's last token has no next token in the row
            rows.Add(new PackedRow(ids, labels, Enumerable.Range(0, cutoffLen).ToArray(), new int[cutoffLen],
                owner[start..(start + cutoffLen)].Distinct().ToArray()));
        }
        return rows;
    }
}
