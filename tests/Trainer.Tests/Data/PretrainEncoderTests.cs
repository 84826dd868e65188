using System.Text.Json.Nodes;
using LongSeqService.Shared.Data;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>Stage pt's tokens as LLaMA-Factory's PretrainDatasetProcessor (no packing) and the LM collator make them, with real tokenizers.</summary>
public class PretrainEncoderTests
{
    private static Example Doc(string text) => new("", "", [new Turn(Role.User, text)]);

    [Fact]
    public void Encode_Qwen3_TextThenItsEos_EveryTokenLabelled()
    {
        using var tok = TextTokenizer.Load(RealTokenizers.Qwen3);
        const string text = "Long-context models read whole books.";

        var seq = new PretrainEncoder(tok, cutoffLen: 2048).Encode(Doc(text))!;

        Assert.Equal("<|im_end|>", tok.EosToken);                    // Qwen3's tokenizer_config.json eos
        Assert.Equal([.. tok.Encode(text), 151645], seq.InputIds);  // no bos (add_bos_token false), eos appended
        Assert.Equal(seq.InputIds, seq.Labels);                      // pad <|endoftext|> never occurs: all learned
    }

    [Fact]
    public void Encode_Llama31WithLlama3Template_AppendsEndOfTextNotEot()
    {
        using var tok = TextTokenizer.Load(RealTokenizers.Llama31);
        const string text = "Ring attention splits the sequence.";

        var seq = new PretrainEncoder(tok, 2048, template: "llama3").Encode(Doc(text))!;
        var plain = new PretrainEncoder(tok, 2048).Encode(Doc(text))!;

        Assert.Equal([.. tok.Encode(text), 128001], seq.InputIds);  // <|end_of_text|>, and no <|begin_of_text|>
        Assert.Equal(128009, plain.InputIds[^1]);                    // otherwise the tokenizer's eos, <|eot_id|>
        Assert.Equal(seq.InputIds, seq.Labels);
    }

    [Fact]
    public void Encode_LongDocument_KeepsTheFirstCutoffTokens()
    {
        using var tok = TextTokenizer.Load(RealTokenizers.Qwen3);
        var text = string.Join(" ", Enumerable.Range(0, 400).Select(i => $"word{i}"));
        var all = tok.Encode(text);

        var seq = new PretrainEncoder(tok, cutoffLen: 100).Encode(Doc(text))!;

        Assert.True(all.Length > 100);
        Assert.Equal(all[..100], seq.InputIds);                     // truncation drops the tail, eos included
        Assert.Equal(seq.InputIds, seq.Labels);
    }

    /// <summary>add_bos_token true puts bos in front; a pad id equal to the appended eos is not learned (HF's LM collator).</summary>
    [Fact]
    public void Encode_AddBosAndPadIsEos_BosFirstAndEosMasked()
    {
        using var t = new TempFiles();
        File.Copy(Path.Combine(RealTokenizers.Llama31, "tokenizer.json"), Path.Combine(t.Dir, "tokenizer.json"));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(RealTokenizers.Llama31, "tokenizer_config.json")))!.AsObject();
        cfg["add_bos_token"] = true;
        cfg["pad_token"] = "<|eot_id|>";
        File.WriteAllText(Path.Combine(t.Dir, "tokenizer_config.json"), cfg.ToJsonString());
        using var tok = TextTokenizer.Load(t.Dir);

        var seq = new PretrainEncoder(tok, 2048).Encode(Doc("Hello world"))!;

        Assert.Equal([128000, .. tok.Encode("Hello world"), 128009], seq.InputIds);
        Assert.Equal([128000, .. tok.Encode("Hello world"), EncodedSequence.IgnoreIndex], seq.Labels);
    }

    [Fact]
    public void Encode_C4Demo_AllDocumentsKeptWithinCutoff()
    {
        using var tok = TextTokenizer.Load(RealTokenizers.Qwen3);
        var c4 = DatasetLoader.Load(RepoPaths.Data("c4_demo.jsonl"), null);

        var encoded = new PretrainEncoder(tok, cutoffLen: 512).Encode(c4);

        Assert.Equal(300, encoded.Items.Count);
        Assert.Equal(0, encoded.Skipped);
        Assert.All(encoded.Items, s => Assert.InRange(s.Length, 2, 512));
        Assert.Contains(encoded.Items, s => s.Length == 512);            // some documents are longer than the cutoff
        Assert.Contains(encoded.Items, s => s.Length < 512 && s.InputIds[^1] == 151645);
    }
}
