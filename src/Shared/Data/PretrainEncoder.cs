namespace LongSeqService.Shared.Data;

/// <summary>
/// Token ids of pre-training documents (stage pt), as LLaMA-Factory's <c>PretrainDatasetProcessor</c>
/// without packing: the document's text, then the end-of-text token (<c>&lt;|end_of_text|&gt;</c> under the
/// llama3 template, else the tokenizer's eos), a bos in front only when tokenizer_config.json sets
/// <c>add_bos_token</c>, cut to the first <c>cutoff_len</c> tokens. Every token is a label, except a token
/// equal to the pad id (Hugging Face's language-modelling collator, which LLaMA-Factory's pt stage uses,
/// masks those). No chat template is applied. The loss is the SFT objective on these labels.
/// </summary>
public sealed class PretrainEncoder
{
    private readonly TextTokenizer _tokenizer;
    private readonly int _eosId;
    private readonly int? _bosId;
    private readonly int _padId;

    /// <param name="template">The spec's template, only to pick the end-of-text token as LLaMA-Factory does.</param>
    public PretrainEncoder(TextTokenizer tokenizer, int cutoffLen, string? template = null)
    {
        if (cutoffLen <= 0) throw new ArgumentOutOfRangeException(nameof(cutoffLen), cutoffLen, "cutoff_len must be positive");
        _tokenizer = tokenizer;
        CutoffLen = cutoffLen;
        var eos = template == "llama3" ? "<|end_of_text|>" : tokenizer.EosToken;
        _eosId = (eos is null ? null : tokenizer.TokenId(eos))
            ?? throw new ArgumentException(eos is null
                ? "the tokenizer has no eos_token (tokenizer_config.json), which pre-training appends to every document"
                : $"the tokenizer has no '{eos}' token, which pre-training appends to every document", nameof(tokenizer));
        _bosId = tokenizer.AddBosToken ? tokenizer.BosId : null;
        _padId = tokenizer.PadId ?? tokenizer.EosId ?? -1;
    }

    public int CutoffLen { get; }

    /// <summary>One document's ids and labels; null when fewer than two tokens remain (nothing to predict).</summary>
    public EncodedSequence? Encode(Example document)
    {
        if (document.Turns.Count != 1) throw new ArgumentException("a pre-training document is one text", nameof(document));
        var text = _tokenizer.Encode(document.Turns[0].Content);
        int[] ids = [.. _bosId is { } b ? [b] : Array.Empty<int>(), .. text, _eosId];
        if (ids.Length > CutoffLen) ids = ids[..CutoffLen];
        if (ids.Length < 2) return null;
        var labels = ids.Select(id => id == _padId ? EncodedSequence.IgnoreIndex : id).ToArray();
        return new EncodedSequence(ids, labels);
    }

    public EncodedDataset<EncodedSequence> Encode(LoadedDataset dataset) => Encoder.EncodeAll(dataset, Encode);
}
