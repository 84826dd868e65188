using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Models;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>
/// Writes a small Qwen3-shaped Hugging Face model directory with random weights: Qwen3-4B's config.json
/// (the real vocabulary of 151,936, its rope_theta, tied embeddings, eos) with a tiny width and depth,
/// a model.safetensors written byte by byte (the format is an 8-byte header length, a JSON header of
/// name → dtype/shape/offsets, then the raw little-endian data), and Qwen3's real tokenizer.json and
/// tokenizer_config.json. <paramref name="modelType"/> qwen2 writes the same shape as a Qwen2 model
/// (q/k/v biases, no q/k norms) for code that does not know qwen3.
/// </summary>
internal static class HfModelFixture
{
    public const int Hidden = 32, Intermediate = 64, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 8;

    public static string WriteQwen3Shaped(string dir, string modelType = "qwen3", int seed = 1)
    {
        Directory.CreateDirectory(dir);
        var config = JsonNode.Parse(ModelShapes.TryGetConfigJson("qwen3-4b")!)!.AsObject();
        config["model_type"] = modelType;
        config["architectures"] = new JsonArray(modelType == "qwen3" ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM");
        config["hidden_size"] = Hidden;
        config["intermediate_size"] = Intermediate;
        config["num_hidden_layers"] = Layers;
        config["num_attention_heads"] = Heads;
        config["num_key_value_heads"] = KvHeads;
        config["head_dim"] = HeadDim;
        config["attention_bias"] = modelType != "qwen3";
        config["torch_dtype"] = "float32";
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new() { WriteIndented = true }));

        int vocab = (int)config["vocab_size"]!;
        var tensors = new List<(string Name, int[] Shape)> { ("model.embed_tokens.weight", [vocab, Hidden]), ("model.norm.weight", [Hidden]) };
        for (int i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            tensors.Add((p + "input_layernorm.weight", [Hidden]));
            tensors.Add((p + "post_attention_layernorm.weight", [Hidden]));
            tensors.Add((p + "self_attn.q_proj.weight", [Heads * HeadDim, Hidden]));
            tensors.Add((p + "self_attn.k_proj.weight", [KvHeads * HeadDim, Hidden]));
            tensors.Add((p + "self_attn.v_proj.weight", [KvHeads * HeadDim, Hidden]));
            tensors.Add((p + "self_attn.o_proj.weight", [Hidden, Heads * HeadDim]));
            if (modelType == "qwen3")
            {
                tensors.Add((p + "self_attn.q_norm.weight", [HeadDim]));
                tensors.Add((p + "self_attn.k_norm.weight", [HeadDim]));
            }
            else
            {
                tensors.Add((p + "self_attn.q_proj.bias", [Heads * HeadDim]));
                tensors.Add((p + "self_attn.k_proj.bias", [KvHeads * HeadDim]));
                tensors.Add((p + "self_attn.v_proj.bias", [KvHeads * HeadDim]));
            }
            tensors.Add((p + "mlp.gate_proj.weight", [Intermediate, Hidden]));
            tensors.Add((p + "mlp.up_proj.weight", [Intermediate, Hidden]));
            tensors.Add((p + "mlp.down_proj.weight", [Hidden, Intermediate]));
        }
        WriteSafetensors(Path.Combine(dir, "model.safetensors"), tensors, seed);

        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(RealTokenizers.Qwen3, f), Path.Combine(dir, f), overwrite: true);
        return dir;
    }

    /// <summary>Float32 tensors: norms 1, everything else N(0, 0.02) as HF initialises (Box–Muller from a seeded Random).</summary>
    private static void WriteSafetensors(string path, List<(string Name, int[] Shape)> tensors, int seed)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            long bytes = 4L * shape.Aggregate(1L, (a, b) => a * b);
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - headerBytes.Length % 8) % 8;                 // data starts 8-aligned (spaces are allowed)
        headerBytes = [.. headerBytes, .. Enumerable.Repeat((byte)' ', pad)];

        using var file = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
        file.Write(len);
        file.Write(headerBytes);
        var rng = new Random(seed);
        var buffer = new byte[4];
        foreach (var (name, shape) in tensors)
        {
            bool norm = name.EndsWith("norm.weight");
            long n = shape.Aggregate(1L, (a, b) => a * b);
            for (long i = 0; i < n; i++)
            {
                float v = norm ? 1f : (float)(0.02 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
                BinaryPrimitives.WriteSingleLittleEndian(buffer, v);
                file.Write(buffer);
            }
        }
    }
}
