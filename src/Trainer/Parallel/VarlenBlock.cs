using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Block attention restricted to query/key pairs of the same document (packed sequences): for each
/// row and each document present among both the block's queries and its keys, the kernel runs on that
/// document's sub-block — the fused kernel, since a sub-block lies inside one document — and the
/// results are written into the document's query rows. Queries whose document has no keys in the
/// block get out = 0 and lse = −∞, which <see cref="LseMerge"/> treats as "no contribution".
/// Causal blocks (query and key blocks are the same tokens) pair each run with itself, causally; runs
/// of one document that are apart (never the case in our layouts, handled anyway) pair as
/// "keys all earlier" (no mask) or not at all. Shapes as <see cref="IAttentionKernel"/>.
/// </summary>
public static class VarlenBlock
{
    /// <summary>(out, lse) over same-document pairs; out and lse in the accumulation dtype, lse (B, H, Tq).</summary>
    public static (Tensor Out, Tensor Lse) Forward(IAttentionKernel kernel, Tensor q, Tensor k, Tensor v, bool causal, DocumentIds qDocs, DocumentIds kDocs)
    {
        using var scope = torch.NewDisposeScope();
        var acc = BlockAttention.AccumulationType(q.dtype);
        var output = torch.zeros(q.shape, dtype: acc, device: q.device);                                    // (B, H, Tq, D)
        var lse = torch.full([q.shape[0], q.shape[1], q.shape[2], 1], double.NegativeInfinity, dtype: acc, device: q.device); // (B, H, Tq, 1)
        foreach (var (b, qr, kr, subCausal, first) in Pairs(causal, qDocs, kDocs))
        {
            using var pairScope = torch.NewDisposeScope();
            var (o, l) = kernel.Forward(Rows(q, b, qr), Rows(k, b, kr), Rows(v, b, kr), subCausal);
            var (outRows, lseRows) = (Rows(output, b, qr), Rows(lse, b, qr));
            if (first)
            {
                outRows.copy_(o);
                lseRows.copy_(l.unsqueeze(-1));
            }
            else LseMerge.Merge(outRows, lseRows, o, l);
        }
        return scope.MoveToOuter(output, lse.squeeze(-1));
    }

    /// <summary>Gradients over same-document pairs, given the final output and lse of the queries; in the accumulation dtype.</summary>
    public static (Tensor Dq, Tensor Dk, Tensor Dv) Backward(IAttentionKernel kernel, Tensor dout, Tensor q, Tensor k, Tensor v,
        Tensor output, Tensor lse, bool causal, DocumentIds qDocs, DocumentIds kDocs)
    {
        using var scope = torch.NewDisposeScope();
        var acc = BlockAttention.AccumulationType(q.dtype);
        var dq = torch.zeros(q.shape, dtype: acc, device: q.device);
        var dk = torch.zeros(k.shape, dtype: acc, device: k.device);
        var dv = torch.zeros(v.shape, dtype: acc, device: v.device);
        foreach (var (b, qr, kr, subCausal, _) in Pairs(causal, qDocs, kDocs))
        {
            using var pairScope = torch.NewDisposeScope();
            var (bdq, bdk, bdv) = kernel.Backward(Rows(dout, b, qr), Rows(q, b, qr), Rows(k, b, kr), Rows(v, b, kr),
                Rows(output, b, qr), Rows(lse, b, qr), subCausal);
            Rows(dq, b, qr).add_(bdq);
            Rows(dk, b, kr).add_(bdk);
            Rows(dv, b, kr).add_(bdv);
        }
        return scope.MoveToOuter(dq, dk, dv);
    }

    /// <summary>Whether any query of the block shares a document with any of its keys.</summary>
    public static bool AnyPair(bool causal, DocumentIds qDocs, DocumentIds kDocs) => Pairs(causal, qDocs, kDocs).Any();

    /// <summary>The (row, query run, key run, causal, first pair of this query run) sub-blocks that carry attention.</summary>
    private static IEnumerable<(int Row, (int Start, int Length) Q, (int Start, int Length) K, bool Causal, bool First)> Pairs(
        bool causal, DocumentIds qDocs, DocumentIds kDocs)
    {
        if (qDocs.Rows != kDocs.Rows) throw new ArgumentException($"query and key document ids disagree on the batch ({qDocs.Rows} vs {kDocs.Rows} rows)");
        if (causal && qDocs.Length != kDocs.Length) throw new ArgumentException("a causal block needs as many queries as keys");
        for (var b = 0; b < qDocs.Rows; b++)
        {
            var keyRuns = kDocs.Runs(b);
            foreach (var qr in qDocs.Runs(b))
            {
                var first = true;
                foreach (var kr in keyRuns)
                {
                    if (kr.Document != qr.Document) continue;
                    bool sub;
                    if (!causal) sub = false;                                   // every key of the block precedes every query
                    else if (kr.Start == qr.Start) sub = true;                  // the run itself: causal within it
                    else if (kr.Start + kr.Length <= qr.Start) sub = false;     // an earlier run of the document
                    else continue;                                              // a later run: in the future
                    yield return (b, (qr.Start, qr.Length), (kr.Start, kr.Length), sub, first);
                    first = false;
                }
            }
        }
    }

    /// <summary>Row b, tokens [start, start + length) of a (B, H, T, …) tensor (a view).</summary>
    private static Tensor Rows(Tensor t, int b, (int Start, int Length) r) => t.narrow(0, b, 1).narrow(2, r.Start, r.Length);
}
