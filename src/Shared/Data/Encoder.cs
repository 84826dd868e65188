namespace LongSeqService.Shared.Data;

/// <summary>
/// Turns examples into token ids and label masks with a chat template, as LLaMA-Factory's supervised and
/// pairwise processors do. Supervised: each (prompt turn, model turn) pair is one (source, target) pair;
/// every model turn is learned (its tokens including the end-of-turn token), prompts are masked.
/// Truncation to <c>cutoff_len</c> follows <c>infer_seqlen</c>: each pair gets the remaining budget split
/// between source and target, favouring the target; later pairs are dropped once the budget is spent.
/// An example left with no label token is skipped (returns null) and counted, never trained on silently.
/// </summary>
public sealed class Encoder
{
    private readonly TextTokenizer _tokenizer;
    private readonly ChatTemplate _template;

    public Encoder(TextTokenizer tokenizer, ChatTemplate template, int cutoffLen)
    {
        if (cutoffLen <= 0) throw new ArgumentOutOfRangeException(nameof(cutoffLen), cutoffLen, "cutoff_len must be positive");
        template.Validate(tokenizer);
        _tokenizer = tokenizer;
        _template = template;
        CutoffLen = cutoffLen;
    }

    public int CutoffLen { get; }

    /// <summary>
    /// LLaMA-Factory's <c>infer_seqlen</c>: lengths kept of a source and a target within <paramref name="cutoffLen"/>.
    /// A short target (under half the budget) is kept whole; else a short source is kept whole; else
    /// both are cut in proportion to their lengths.
    /// </summary>
    public static (int Source, int Target) InferSeqLen(int sourceLen, int targetLen, int cutoffLen)
    {
        int maxTarget = targetLen * 2 < cutoffLen ? cutoffLen
            : sourceLen * 2 < cutoffLen ? cutoffLen - sourceLen
            : (int)(cutoffLen * ((double)targetLen / (sourceLen + targetLen)));
        int newTarget = Math.Min(maxTarget, targetLen);
        int newSource = Math.Min(Math.Max(cutoffLen - newTarget, 0), sourceLen);
        return (newSource, newTarget);
    }

    /// <summary>Input ids and labels of a supervised example; null when no answer token fits the cutoff.</summary>
    public EncodedSequence? EncodeSupervised(Example example)
    {
        if (example.IsPreference)
            throw new InvalidOperationException("a preference example (chosen/rejected) cannot be used for supervised training; use stage 'dpo'");
        if (example.Turns.Count == 0 || example.Turns.Count % 2 != 0)
            throw new ArgumentException("a supervised example needs (prompt, answer) turn pairs", nameof(example));

        var exchanges = _template.EncodeMultiTurn(_tokenizer, example.Turns, example.System, example.Tools);
        var inputIds = new List<int>();
        var labels = new List<int>();
        int total = 0, learned = 0;
        foreach (var (source, target) in exchanges)
        {
            if (total >= CutoffLen) break;
            var (sLen, tLen) = InferSeqLen(source.Length, target.Length, CutoffLen - total);
            inputIds.AddRange(source.AsSpan(0, sLen));
            inputIds.AddRange(target.AsSpan(0, tLen));
            labels.AddRange(Enumerable.Repeat(EncodedSequence.IgnoreIndex, sLen));
            labels.AddRange(target.AsSpan(0, tLen));
            total += sLen + tLen;
            learned += tLen;
        }
        return learned == 0 ? null : new EncodedSequence([.. inputIds], [.. labels]);
    }

    /// <summary>
    /// Chosen and rejected sequences of a preference example (LLaMA-Factory's pairwise processor): the
    /// prompt is every turn before the answer, only the answer is learned, and the cutoff budget is split
    /// between the prompt and the longer answer. Null when no answer token fits.
    /// </summary>
    public EncodedPair? EncodePairwise(Example example)
    {
        if (!example.IsPreference || example.Rejected is null)
            throw new InvalidOperationException("example has no chosen/rejected answers; preference training needs preference data");

        var (prompt, chosen) = EncodeOneTurn(example, example.Chosen!);
        var (_, rejected) = EncodeOneTurn(example, example.Rejected);
        var (sLen, tLen) = InferSeqLen(prompt.Length, Math.Max(chosen.Length, rejected.Length), CutoffLen);
        if (tLen == 0 || Math.Min(tLen, Math.Min(chosen.Length, rejected.Length)) == 0) return null;

        EncodedSequence Build(int[] answer)
        {
            int n = Math.Min(tLen, answer.Length);
            int[] ids = [.. prompt.AsSpan(0, sLen), .. answer.AsSpan(0, n)];
            int[] labels = [.. Enumerable.Repeat(EncodedSequence.IgnoreIndex, sLen), .. answer.AsSpan(0, n)];
            return new EncodedSequence(ids, labels);
        }
        return new EncodedPair(Build(chosen), Build(rejected), sLen);
    }

    // LLaMA-Factory encode_oneturn: all messages but the last form the prompt, the last is the response.
    private (int[] Prompt, int[] Response) EncodeOneTurn(Example example, Turn answer) =>
        _template.EncodeOneTurn(_tokenizer, [.. example.Turns, answer], example.System, example.Tools);

    public EncodedDataset<EncodedSequence> EncodeSupervised(LoadedDataset dataset) => EncodeAll(dataset, EncodeSupervised);

    public EncodedDataset<EncodedPair> EncodePairwise(LoadedDataset dataset) => EncodeAll(dataset, EncodePairwise);

    internal static EncodedDataset<T> EncodeAll<T>(LoadedDataset dataset, Func<Example, T?> encode) where T : class
    {
        var items = new List<T>(dataset.Count);
        var skipped = new List<int>();
        foreach (var ex in dataset.Examples)
        {
            var encoded = encode(ex);
            if (encoded is null) skipped.Add(ex.Line);
            else items.Add(encoded);
        }
        return new EncodedDataset<T>(items, skipped.Count, skipped);
    }
}
