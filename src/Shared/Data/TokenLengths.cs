using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Data;

/// <summary>
/// Token lengths of a dataset as a model would see them: the model's tokenizer, its chat template, no
/// truncation — so a user can pick <c>cutoff_len</c> (and see how much a given one would cut) before
/// submitting. Preference pairs count their longer sequence.
/// </summary>
public static class TokenLengths
{
    /// <summary>Where a model's tokenizer.json lives: the generated one for built-in models, else the model directory.</summary>
    public static string TokenizerDir(string modelNameOrPath) =>
        ModelShape.Builtins.ContainsKey(modelNameOrPath) ? BuiltinTokenizer.EnsureCached() : modelNameOrPath;

    public static TokenStats Compute(string datasetPath, string? formatting, string model, ModelShape shape, int cutoffLen, string? template = null)
    {
        using var tokenizer = TextTokenizer.Load(TokenizerDir(model));
        // A stored dataset's format is its detected one; "text" means documents for stage pt (no chat template).
        var dataset = DatasetLoader.Load(datasetPath, formatting is "alpaca" or "sharegpt" ? formatting : null);
        if (dataset.IsText)
        {
            var pt = new PretrainEncoder(tokenizer, int.MaxValue / 4, template);
            var docs = dataset.Examples.Select(pt.Encode).OfType<EncodedSequence>().Select(s => s.Length).ToList();
            return new TokenStats(model, LengthStats.From(docs)!, docs.Count(l => l > cutoffLen), cutoffLen);
        }
        var chat = ChatTemplate.Get(template ?? ChatTemplate.DefaultFor(shape.ModelType, tokenizer));
        var encoder = new Encoder(tokenizer, chat, int.MaxValue / 4);    // no truncation: true lengths
        var lengths = new List<int>(dataset.Count);
        foreach (var example in dataset.Examples)
        {
            if (example.IsPreference)
            {
                if (encoder.EncodePairwise(example) is { } pair) lengths.Add(Math.Max(pair.Chosen.Length, pair.Rejected.Length));
            }
            else if (encoder.EncodeSupervised(example) is { } seq) lengths.Add(seq.Length);
        }
        return new TokenStats(model, LengthStats.From(lengths)!, lengths.Count(l => l > cutoffLen), cutoffLen);
    }
}
