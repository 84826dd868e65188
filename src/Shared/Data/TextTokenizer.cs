using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Data;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> loaded through the Tokenizers.DotNet library (the Rust
/// <c>tokenizers</c> crate). Text is encoded without any special tokens added: chat templates place every
/// special token themselves, as LLaMA-Factory does with <c>add_special_tokens=False</c>.
/// Thread-safe (the native library guards its tokenizer table with a lock and encodes through shared references).
/// </summary>
public sealed class TextTokenizer : IDisposable
{
    private readonly Tokenizers.DotNet.Tokenizer _native;
    private readonly Dictionary<string, int> _added;        // added tokens (content → id)
    private readonly Dictionary<int, string> _specialById;  // added tokens flagged special (id → content)
    private readonly Dictionary<string, int> _vocab;        // the model's own vocabulary

    private TextTokenizer(Tokenizers.DotNet.Tokenizer native, Dictionary<string, int> added,
        Dictionary<int, string> specialById, Dictionary<string, int> vocab, string? bos, string? eos, string? pad, bool addBos)
    {
        AddBosToken = addBos;
        _native = native;
        _added = added;
        _specialById = specialById;
        _vocab = vocab;
        VocabSize = Math.Max(vocab.Count == 0 ? -1 : vocab.Values.Max(), added.Count == 0 ? -1 : added.Values.Max()) + 1;
        BosId = bos is null ? null : TokenId(bos);
        EosId = eos is null ? null : TokenId(eos);
        PadId = pad is null ? null : TokenId(pad);
        BosToken = BosId is null ? null : bos;
        EosToken = EosId is null ? null : eos;
        PadToken = PadId is null ? null : pad;
    }

    /// <summary>Number of ids: the largest id of the vocabulary or the added tokens, plus one.</summary>
    public int VocabSize { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }
    public string? BosToken { get; }
    public string? EosToken { get; }
    public string? PadToken { get; }

    /// <summary><c>add_bos_token</c> of tokenizer_config.json (Hugging Face's slow-tokenizer flag, which
    /// LLaMA-Factory's pre-training reads); false when absent, as for Qwen's and Llama 3's fast tokenizers.</summary>
    public bool AddBosToken { get; }

    /// <summary>
    /// Loads <c>tokenizer.json</c> from <paramref name="dir"/> (or the file itself if a path to a .json is
    /// given) and reads bos/eos/pad from <c>tokenizer_config.json</c> (or <c>special_tokens_map.json</c>).
    /// Without either, eos falls back to the first of &lt;|endoftext|&gt;, &lt;/s&gt;, &lt;|end_of_text|&gt;,
    /// &lt;eos&gt; that the tokenizer has.
    /// </summary>
    public static TextTokenizer Load(string dir)
    {
        var file = File.Exists(dir) ? dir : Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(file))
            throw new FileNotFoundException($"no tokenizer.json in '{dir}'", file);
        var configDir = Path.GetDirectoryName(Path.GetFullPath(file))!;

        var bytes = File.ReadAllBytes(file);
        var root = JsonNode.Parse(bytes)?.AsObject()
            ?? throw new InvalidDataException($"{file}: not a JSON object");

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var specialById = new Dictionary<int, string>();
        foreach (var t in root["added_tokens"]?.AsArray() ?? [])
        {
            var content = (string)t!["content"]!;
            var id = (int)t["id"]!;
            added[content] = id;
            if ((bool?)t["special"] ?? false) specialById[id] = content;
        }
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root["model"]?["vocab"] is JsonObject v)
            foreach (var (tok, id) in v) vocab[tok] = (int)id!;
        else if (root["model"]?["vocab"] is JsonArray unigram) // Unigram: [[piece, score], ...]
            for (int i = 0; i < unigram.Count; i++) vocab[(string)unigram[i]![0]!] = i;

        // The library encodes with add_special_tokens = true, so a post-processor (e.g. Llama 3's
        // TemplateProcessing adding <|begin_of_text|>) would insert tokens behind the template's back.
        // Load a copy without it; a post-processor never changes the ids of the text itself otherwise.
        var path = file;
        if (root["post_processor"] is not null)
        {
            root["post_processor"] = null;
            path = CacheWithoutPostProcessor(bytes, root);
        }

        var (bos, eos, pad, addBos) = ReadSpecialTokenNames(configDir, added);
        var native = new Tokenizers.DotNet.Tokenizer(path);
        return new TextTokenizer(native, added, specialById, vocab, bos, eos, pad, addBos);
    }

    /// <summary>Token ids of <paramref name="text"/>; special-token strings in the text become their ids.</summary>
    public int[] Encode(string text)
    {
        if (text.Length == 0) return [];
        var ids = _native.Encode(text);
        var result = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++) result[i] = (int)ids[i];
        return result;
    }

    /// <summary>Text of <paramref name="ids"/>, special tokens written out (e.g. "&lt;|im_end|&gt;").</summary>
    public string Decode(int[] ids)
    {
        // The library decodes with skip_special_tokens = true; decode the runs between special tokens and
        // write the specials back in ourselves.
        var sb = new StringBuilder();
        var run = new List<uint>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary (size {VocabSize})");
            if (_specialById.TryGetValue(id, out var special))
            {
                Flush();
                sb.Append(special);
            }
            else run.Add((uint)id);
        }
        Flush();
        return sb.ToString();

        void Flush()
        {
            if (run.Count == 0) return;
            sb.Append(_native.Decode([.. run]));
            run.Clear();
        }
    }

    /// <summary>Id of an added (special) token, or of a vocabulary entry spelled exactly so; null if neither.</summary>
    public int? TokenId(string specialToken) =>
        _added.TryGetValue(specialToken, out var id) ? id
        : _vocab.TryGetValue(specialToken, out id) ? id
        : null;

    /// <summary>True when <paramref name="token"/> is matched as one token anywhere in text (an added token).</summary>
    public bool IsAddedToken(string token) => _added.ContainsKey(token);

    public void Dispose() => _native.Dispose();

    private static string CacheWithoutPostProcessor(byte[] original, JsonObject stripped)
    {
        var hash = Convert.ToHexString(SHA256.HashData(original))[..16].ToLowerInvariant();
        var dir = Path.Combine(Path.GetTempPath(), "longseq-tokenizers");
        var path = Path.Combine(dir, hash + ".tokenizer.json");
        if (File.Exists(path)) return path;
        Directory.CreateDirectory(dir);
        var staging = path + $".{Environment.ProcessId}-{Guid.NewGuid():N}.tmp";
        File.WriteAllText(staging, stripped.ToJsonString());
        File.Move(staging, path, overwrite: true); // atomic rename; concurrent writers write identical bytes
        return path;
    }

    private static (string? Bos, string? Eos, string? Pad, bool AddBos) ReadSpecialTokenNames(string dir, Dictionary<string, int> added)
    {
        string? bos = null, eos = null, pad = null;
        bool? addBos = null;
        bool anyConfig = false;
        // tokenizer_config.json first; special_tokens_map.json fills what it leaves out.
        foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json" })
        {
            var p = Path.Combine(dir, name);
            if (!File.Exists(p) || JsonNode.Parse(File.ReadAllText(p)) is not JsonObject cfg) continue;
            anyConfig = true;
            bos ??= TokenName(cfg["bos_token"]);
            eos ??= TokenName(cfg["eos_token"]);
            pad ??= TokenName(cfg["pad_token"]);
            addBos ??= cfg["add_bos_token"] is JsonValue b && b.TryGetValue<bool>(out var flag) ? flag : null;
        }
        if (!anyConfig)
            eos = new[] { "<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>" }.FirstOrDefault(added.ContainsKey);
        return (bos, eos, pad, addBos ?? false);
    }

    // A config token is either "text" or {"content": "text", ...} (AddedToken serialised).
    private static string? TokenName(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o => (string?)o["content"],
        _ => null,
    };
}
