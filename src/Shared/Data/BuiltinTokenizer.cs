using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace LongSeqService.Shared.Data;

/// <summary>
/// The tokenizer of the built-in tiny models: a byte-level BPE <c>tokenizer.json</c> (GPT-2 byte alphabet,
/// ByteLevel pre-tokenizer and decoder) whose merges are learned from <see cref="BuiltinCorpus"/>, plus
/// the special tokens of every supported chat template. Exactly <see cref="VocabSize"/> ids: 256 bytes,
/// learned merges, then the specials at the top. Generated deterministically, so every machine builds the
/// same file, and loaded with <see cref="TextTokenizer"/> like any Hugging Face tokenizer.
/// </summary>
public static class BuiltinTokenizer
{
    /// <summary>Total number of ids; equals the tiny models' <c>vocab_size</c>.</summary>
    public const int VocabSize = 1024;

    /// <summary>Special tokens, in id order, occupying the last ids of the vocabulary.</summary>
    public static IReadOnlyList<string> SpecialTokens { get; } =
    [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>",
        "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    ];

    public const string BosToken = "<|begin_of_text|>";
    public const string EosToken = "<|endoftext|>";
    public const string PadToken = "<|endoftext|>";

    // Bump when the generated files change for a reason other than the corpus or the specials.
    private const string GeneratorVersion = "builtin-bpe-v1";

    private static volatile string? _cachedDir;

    /// <summary>Writes <c>tokenizer.json</c> and <c>tokenizer_config.json</c> into <paramref name="dir"/>.</summary>
    public static void WriteTo(string dir)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.json"), BuildTokenizerJson());
        File.WriteAllBytes(Path.Combine(dir, "tokenizer_config.json"), BuildTokenizerConfigJson());
    }

    /// <summary>
    /// A directory holding the generated files, under the system temp folder and keyed by a hash of what
    /// determines them, so they are built once per machine. Safe under concurrent calls from threads and
    /// processes: each writer fills a private folder and renames it into place atomically.
    /// </summary>
    /// <param name="cacheRoot">Folder to cache under; default: the system temp folder's <c>longseq-builtin-tokenizer</c>.</param>
    public static string EnsureCached(string? cacheRoot = null)
    {
        if (cacheRoot is not null) return CreateCache(cacheRoot);
        // Re-checked on every call: a temp-folder cleaner may have removed the files since.
        var dir = _cachedDir;
        if (dir is not null && IsComplete(dir)) return dir;
        return _cachedDir = CreateCache(Path.Combine(Path.GetTempPath(), "longseq-builtin-tokenizer"));
    }

    private static string CreateCache(string root)
    {
        var final = Path.Combine(root, CacheKey());
        if (IsComplete(final)) return final;

        Directory.CreateDirectory(root);
        var staging = Path.Combine(root, $".staging-{Environment.ProcessId}-{Guid.NewGuid():N}");
        WriteTo(staging);
        try
        {
            Directory.Move(staging, final);
        }
        catch (IOException) when (IsComplete(final))
        {
            // Another thread or process won the race; its copy is identical.
            Directory.Delete(staging, recursive: true);
        }
        return final;
    }

    private static bool IsComplete(string dir) =>
        File.Exists(Path.Combine(dir, "tokenizer.json")) && File.Exists(Path.Combine(dir, "tokenizer_config.json"));

    private static string CacheKey()
    {
        var key = GeneratorVersion + "\n" + string.Join("\n", SpecialTokens) + "\n" + BuiltinCorpus.Text;
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16].ToLowerInvariant();
    }

    /// <summary>Vocabulary (token → id) and merges of the byte-level BPE model, specials excluded.</summary>
    private static (List<string> Vocab, List<(string, string)> Merges) BuildModel()
    {
        int baseSize = VocabSize - SpecialTokens.Count;
        var vocab = ByteLevelAlphabet.ByteToChar.Select(c => c.ToString()).ToList();
        var known = new HashSet<string>(vocab, StringComparer.Ordinal);
        var merges = new List<(string, string)>();
        // Learn a few more merges than needed (two pairs can produce the same string), keep the prefix
        // of the ranked list that fills the vocabulary exactly.
        foreach (var (l, r) in BpeMergeTrainer.Train(BuiltinCorpus.Text, maxMerges: baseSize - 256 + 64))
        {
            if (vocab.Count == baseSize) break;
            merges.Add((l, r));
            if (known.Add(l + r)) vocab.Add(l + r);
        }
        if (vocab.Count != baseSize)
            throw new InvalidOperationException(
                $"built-in corpus too small: {vocab.Count} base tokens learned, {baseSize} needed");
        return (vocab, merges);
    }

    private static byte[] BuildTokenizerJson()
    {
        var (vocab, merges) = BuildModel();
        return WriteJson(w =>
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < SpecialTokens.Count; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("id", vocab.Count + i);
                w.WriteString("content", SpecialTokens[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNull("normalizer");
            w.WritePropertyName("pre_tokenizer");
            WriteByteLevel(w, addPrefixSpace: false);
            w.WriteNull("post_processor");
            w.WritePropertyName("decoder");
            WriteByteLevel(w, addPrefixSpace: true);
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", false);
            w.WriteStartObject("vocab");
            for (int i = 0; i < vocab.Count; i++) w.WriteNumber(vocab[i], i);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (l, r) in merges) w.WriteStringValue(l + " " + r);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    private static void WriteByteLevel(Utf8JsonWriter w, bool addPrefixSpace)
    {
        w.WriteStartObject();
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", addPrefixSpace);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", true);
        w.WriteEndObject();
    }

    private static byte[] BuildTokenizerConfigJson()
    {
        int firstSpecial = VocabSize - SpecialTokens.Count;
        return WriteJson(w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("add_bos_token", false);
            w.WriteBoolean("add_eos_token", false);
            w.WriteStartObject("added_tokens_decoder");
            for (int i = 0; i < SpecialTokens.Count; i++)
            {
                w.WriteStartObject((firstSpecial + i).ToString(System.Globalization.CultureInfo.InvariantCulture));
                w.WriteString("content", SpecialTokens[i]);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteString("bos_token", BosToken);
            w.WriteString("eos_token", EosToken);
            w.WriteString("pad_token", PadToken);
            w.WriteBoolean("clean_up_tokenization_spaces", false);
            w.WriteNumber("model_max_length", 1 << 20);
            w.WriteString("tokenizer_class", "PreTrainedTokenizerFast");
            w.WriteEndObject();
        });
    }

    private static byte[] WriteJson(Action<Utf8JsonWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions
               { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            write(w);
        return ms.ToArray();
    }
}
