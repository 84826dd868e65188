using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Seeded random token sequences for <c>parity</c> and <c>bench</c>: they need exact lengths and no
/// dataset on disk. SFT rows learn their second half (a prompt, then an answer); preference pairs share a
/// prompt and differ in their answers. Lengths vary a little between rows (down to 3/4 of the target) so
/// padding and lengths that are not multiples of 2·sp are always exercised.
/// </summary>
public static class SyntheticData
{
    public static List<EncodedSequence> Sft(int count, int seqLen, int vocab, int seed, bool exactLength = false)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Row(rng, Length(rng, seqLen, exactLength), vocab)).ToList();
    }

    public static List<EncodedPair> Pairs(int count, int seqLen, int vocab, int seed, bool exactLength = false)
    {
        var rng = new Random(seed);
        var pairs = new List<EncodedPair>(count);
        for (int i = 0; i < count; i++)
        {
            int len = Length(rng, seqLen, exactLength), prompt = len / 2;
            var chosen = Row(rng, len, vocab, prompt);
            var rejected = Row(rng, len, vocab, prompt);
            Array.Copy(chosen.InputIds, rejected.InputIds, prompt);                 // the shared prompt
            pairs.Add(new EncodedPair(chosen, rejected, prompt));
        }
        return pairs;
    }

    private static int Length(Random rng, int seqLen, bool exact) => exact ? seqLen : Math.Max(4, seqLen - rng.Next(0, seqLen / 4 + 1));

    private static EncodedSequence Row(Random rng, int len, int vocab, int? promptLen = null)
    {
        int prompt = promptLen ?? len / 2;
        var ids = new int[len];
        var labels = new int[len];
        for (int t = 0; t < len; t++)
        {
            ids[t] = rng.Next(1, vocab);
            labels[t] = t >= prompt ? ids[t] : EncodedSequence.IgnoreIndex;
        }
        return new EncodedSequence(ids, labels);
    }
}
