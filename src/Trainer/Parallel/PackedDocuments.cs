using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// The document each token belongs to when several examples are packed into one sequence, so that
/// attention never crosses an example boundary. Set per micro-batch by the trainer around forward
/// and backward (<see cref="Use"/>), read by the attention cores (local, ring, Ulysses): the model's
/// layers stay unaware of packing, as they are of sequence parallelism. The value is this rank's shard
/// of a (B, T) int64 tensor of document ids, sharded exactly like input_ids; null means unpacked
/// (plain causal attention). Per thread, because ranks may be threads of one process.
/// </summary>
public static class PackedDocuments
{
    [ThreadStatic] private static Tensor? _current;

    /// <summary>This rank's (B, Tlocal) document ids, or null when the batch is not packed.</summary>
    public static Tensor? Current => _current;

    /// <summary>Makes <paramref name="documentIds"/> current until the returned handle is disposed.</summary>
    public static IDisposable Use(Tensor? documentIds)
    {
        if (documentIds is not null && (documentIds.dim() != 2 || documentIds.dtype != ScalarType.Int64))
            throw new ArgumentException($"document ids must be a (B, T) int64 tensor; got {documentIds.dtype} of shape ({string.Join(", ", documentIds.shape)})");
        var previous = _current;
        _current = documentIds;
        return new Restore(previous);
    }

    private sealed class Restore(Tensor? previous) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            _current = previous;
        }
    }
}

/// <summary>
/// Document ids of a block of tokens, on the CPU: (B, T) values and their runs. A document is a
/// contiguous range of the global sequence and every shard layout keeps tokens in global order, so
/// within any shard (or half-shard) a document's tokens form one run.
/// </summary>
public sealed class DocumentIds
{
    private readonly long[] _ids; // row-major (B, T)

    public DocumentIds(long[] ids, int rows, int length)
    {
        if (ids.Length != rows * length) throw new ArgumentException($"expected {rows}×{length} ids, got {ids.Length}");
        (_ids, Rows, Length) = (ids, rows, length);
    }

    public int Rows { get; }

    public int Length { get; }

    public static DocumentIds From(Tensor ids) =>
        new(ids.cpu().contiguous().data<long>().ToArray(), (int)ids.shape[0], (int)ids.shape[1]);

    public long this[int row, int t] => _ids[row * Length + t];

    /// <summary>Tokens [start, start + length) of every row.</summary>
    public DocumentIds Narrow(int start, int length)
    {
        var ids = new long[Rows * length];
        for (var b = 0; b < Rows; b++) Array.Copy(_ids, b * Length + start, ids, b * length, length);
        return new DocumentIds(ids, Rows, length);
    }

    /// <summary>Maximal runs of equal ids in row <paramref name="row"/>: (document, start, length).</summary>
    public IReadOnlyList<(long Document, int Start, int Length)> Runs(int row)
    {
        var runs = new List<(long, int, int)>();
        var start = 0;
        for (var t = 1; t <= Length; t++)
        {
            if (t < Length && this[row, t] == this[row, start]) continue;
            runs.Add((this[row, start], start, t - start));
            start = t;
        }
        return runs;
    }
}
