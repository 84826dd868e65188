using System.Text.Json;
using LongSeqService.Shared.Models;
using Xunit;

namespace LongSeqService.Shared.Tests;

public class ModelShapesTests
{
    [Fact]
    public void Names_ListTheCommonModels_EachAValidConfig()
    {
        foreach (var expected in new[] { "qwen2.5-0.5b", "qwen2.5-7b", "qwen2.5-72b", "qwen3-0.6b", "qwen3-8b", "llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b" })
            Assert.Contains(expected, ModelShapes.Names);
        foreach (var name in ModelShapes.Names)
        {
            using var doc = JsonDocument.Parse(ModelShapes.TryGetConfigJson(ModelShapes.Prefix + name)!);
            var r = doc.RootElement;
            Assert.True(r.GetProperty("hidden_size").GetInt32() > 0, name);
            Assert.Equal(0, r.GetProperty("num_attention_heads").GetInt32() % r.GetProperty("num_key_value_heads").GetInt32());
        }
    }

    [Fact]
    public void Qwen25_05b_HasThePublishedShape()
    {
        // Qwen/Qwen2.5-0.5B config.json: 494M parameters with tied embeddings.
        using var doc = JsonDocument.Parse(ModelShapes.TryGetConfigJson("shape:qwen2.5-0.5b")!);
        var r = doc.RootElement;
        long h = r.GetProperty("hidden_size").GetInt32(), i = r.GetProperty("intermediate_size").GetInt32(), v = r.GetProperty("vocab_size").GetInt32();
        long layers = r.GetProperty("num_hidden_layers").GetInt32(), heads = r.GetProperty("num_attention_heads").GetInt32(), kv = r.GetProperty("num_key_value_heads").GetInt32();
        long hd = h / heads;
        long perLayer = h * heads * hd + heads * hd + 2 * (h * kv * hd + kv * hd) + heads * hd * h + 3 * h * i + 2 * h;
        long total = v * h + layers * perLayer + h;
        Assert.InRange(total, 493_000_000, 495_000_000);
    }

    [Fact]
    public void TryGetConfigJson_UnknownShape_IsNullAndTheMessageNamesTheShapes()
    {
        Assert.Null(ModelShapes.TryGetConfigJson("shape:gpt-5"));
        Assert.Contains("shape:qwen2.5-0.5b", ModelShapes.Unknown("gpt-5"));
    }
}
