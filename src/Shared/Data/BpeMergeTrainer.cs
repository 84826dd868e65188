using System.Text.RegularExpressions;

namespace LongSeqService.Shared.Data;

/// <summary>
/// Learns a byte-level BPE merge list from a text corpus. This is data generation for the built-in
/// tokenizer (it produces the <c>merges</c> of a <c>tokenizer.json</c>); encoding text is always done by
/// the Hugging Face tokenizers library. Deterministic: ties between equally frequent pairs are broken by
/// ordinal order of the pair's strings.
/// </summary>
public static partial class BpeMergeTrainer
{
    // GPT-2's pre-tokenization pattern, the one the ByteLevel pre-tokenizer applies (use_regex = true):
    // merges never cross these word boundaries.
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Split();

    /// <summary>Returns up to <paramref name="maxMerges"/> merges as (left, right) pairs, in rank order.</summary>
    public static List<(string Left, string Right)> Train(string corpus, int maxMerges)
    {
        // Word (as symbol list) -> count. Symbols are strings in the byte-level alphabet.
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match m in Gpt2Split().Matches(corpus))
        {
            var w = ByteLevelAlphabet.Encode(m.Value);
            wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
        }
        var words = wordCounts
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value))
            .ToList();

        var merges = new List<(string, string)>();
        while (merges.Count < maxMerges)
        {
            var pairCounts = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var p = (symbols[i], symbols[i + 1]);
                    pairCounts[p] = pairCounts.GetValueOrDefault(p) + count;
                }
            if (pairCounts.Count == 0) break; // every word is a single symbol

            var best = pairCounts
                .OrderByDescending(kv => kv.Value)
                .ThenBy(kv => kv.Key.Item1, StringComparer.Ordinal)
                .ThenBy(kv => kv.Key.Item2, StringComparer.Ordinal)
                .First().Key;
            merges.Add(best);

            var merged = best.Item1 + best.Item2;
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return merges;
    }
}
