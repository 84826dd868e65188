using LongSeqService.Shared.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Data;

/// <summary>A padded batch: int64 tensors of shape (B, T). Dispose when done.</summary>
public sealed class Batch : IDisposable
{
    public Batch(Tensor inputIds, Tensor labels, Tensor positionIds, Tensor? documentIds = null)
    {
        InputIds = inputIds;
        Labels = labels;
        PositionIds = positionIds;
        DocumentIds = documentIds;
    }

    public Tensor InputIds { get; }    // (B, T)
    public Tensor Labels { get; }      // (B, T), -100 where nothing is learned (prompts, padding)
    public Tensor PositionIds { get; } // (B, T), 0..T-1 in every row (packed: restarting per example)
    public Tensor? DocumentIds { get; } // (B, T) packed rows: the example each token belongs to (padding: −1); null when unpacked
    public long BatchSize => InputIds.shape[0];
    public long SeqLen => InputIds.shape[1];

    public void Dispose()
    {
        InputIds.Dispose();
        Labels.Dispose();
        PositionIds.Dispose();
        DocumentIds?.Dispose();
    }
}

/// <summary>
/// Pads sequences on the right to the longest one in the batch, rounded up to a multiple of
/// <see cref="PadToMultipleOf"/> (sequence parallelism over P ranks needs 2·P for the zigzag split).
/// Padding gets the pad id in input_ids and -100 in labels; position_ids are 0..T-1 per row, so RoPE
/// sees true positions after a sequence-parallel split. With <see cref="ShiftLabels"/> the labels are
/// shifted left before padding (labels[t] = labels[t+1], last = -100), so that after splitting a
/// sequence into chunks no label belongs to the next chunk.
/// </summary>
public sealed class Collator
{
    public Collator(int padId, int padToMultipleOf = 1, bool shiftLabels = false)
    {
        if (padToMultipleOf < 1) throw new ArgumentOutOfRangeException(nameof(padToMultipleOf), padToMultipleOf, "must be at least 1");
        PadId = padId;
        PadToMultipleOf = padToMultipleOf;
        ShiftLabels = shiftLabels;
    }

    /// <summary>Pad id = the tokenizer's pad token, else its EOS, else 0.</summary>
    public static Collator For(TextTokenizer tokenizer, int padToMultipleOf = 1, bool shiftLabels = false) =>
        new(tokenizer.PadId ?? tokenizer.EosId ?? 0, padToMultipleOf, shiftLabels);

    /// <summary>What a training row is padded to a multiple of under sequence parallelism over <paramref name="sp"/> ranks:
    /// 2·SP for every layout (the zigzag split needs 2·SP chunks; the others are cut on the same grid).</summary>
    public static int SequenceParallelMultiple(int sp) => 2 * sp;

    public int PadId { get; }
    public int PadToMultipleOf { get; }
    public bool ShiftLabels { get; }

    /// <summary>Padded length for sequences whose longest has <paramref name="maxLen"/> tokens.</summary>
    public int PaddedLength(int maxLen) => (maxLen + PadToMultipleOf - 1) / PadToMultipleOf * PadToMultipleOf;

    public Batch Collate(IReadOnlyList<EncodedSequence> sequences, Device? device = null)
    {
        if (sequences.Count == 0) throw new ArgumentException("empty batch", nameof(sequences));
        int b = sequences.Count;
        int t = PaddedLength(sequences.Max(s => s.Length));
        var ids = new long[b * t];
        var labels = new long[b * t];
        var positions = new long[b * t];
        for (int r = 0; r < b; r++)
        {
            var s = sequences[r];
            int off = r * t;
            for (int j = 0; j < t; j++)
            {
                ids[off + j] = j < s.Length ? s.InputIds[j] : PadId;
                int src = ShiftLabels ? j + 1 : j;
                labels[off + j] = src < s.Length ? s.Labels[src] : EncodedSequence.IgnoreIndex;
                positions[off + j] = j;
            }
        }
        long[] shape = [b, t];
        return new Batch(
            torch.tensor(ids, shape, ScalarType.Int64, device),
            torch.tensor(labels, shape, ScalarType.Int64, device),
            torch.tensor(positions, shape, ScalarType.Int64, device));
    }

    /// <summary>
    /// A preference batch as LLaMA-Factory's pairwise collator builds it: the B chosen sequences first,
    /// then the B rejected ones, all padded together — rows [0, B) chosen, [B, 2B) rejected.
    /// </summary>
    /// <summary>
    /// Packed rows, padded on the right like <see cref="Collate"/>; their labels are already shifted
    /// (never shifted again), positions and document ids come from the rows, and padding is a
    /// document of its own (−1) that carries no labels.
    /// </summary>
    public Batch CollatePacked(IReadOnlyList<PackedRow> rows, Device? device = null)
    {
        if (rows.Count == 0) throw new ArgumentException("empty batch", nameof(rows));
        int b = rows.Count;
        int t = PaddedLength(rows.Max(r => r.Length));
        var (ids, labels, positions, docs) = (new long[b * t], new long[b * t], new long[b * t], new long[b * t]);
        for (int r = 0; r < b; r++)
        {
            var row = rows[r];
            for (int j = 0, off = r * t; j < t; j++)
            {
                bool real = j < row.Length;
                ids[off + j] = real ? row.InputIds[j] : PadId;
                labels[off + j] = real ? row.ShiftedLabels[j] : EncodedSequence.IgnoreIndex;
                positions[off + j] = real ? row.PositionIds[j] : j - row.Length;
                docs[off + j] = real ? row.DocumentIds[j] : -1;
            }
        }
        long[] shape = [b, t];
        return new Batch(torch.tensor(ids, shape, ScalarType.Int64, device), torch.tensor(labels, shape, ScalarType.Int64, device),
            torch.tensor(positions, shape, ScalarType.Int64, device), torch.tensor(docs, shape, ScalarType.Int64, device));
    }

    public Batch CollatePairs(IReadOnlyList<EncodedPair> pairs, Device? device = null) =>
        Collate([.. pairs.Select(p => p.Chosen), .. pairs.Select(p => p.Rejected)], device);
}
