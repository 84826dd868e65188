using System.Buffers.Binary;
using System.Text.Json;

namespace LongSeqService.Shared.Models;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string DType, long[] Shape, long Begin, long End);

/// <summary>
/// Reads only the header of a <c>.safetensors</c> file — an 8-byte little-endian length, then that many
/// bytes of JSON (name → dtype, shape, data_offsets) — so a model directory can be checked against its
/// config.json without loading a weight.
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>Headers larger than this are not safetensors headers (real ones are kilobytes to a few megabytes).</summary>
    private const long MaxHeaderBytes = 100L << 20;

    /// <summary>The tensors of <paramref name="path"/>; throws <see cref="InvalidDataException"/> with a one-line
    /// reason (not naming the path: the caller names the file) when the file is not a valid safetensors file.</summary>
    public static IReadOnlyDictionary<string, SafetensorsEntry> Read(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> lengthBytes = stackalloc byte[8];
        if (file.Length < 8 || file.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
            throw new InvalidDataException("is not a safetensors file (shorter than its 8-byte header length)");
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || headerLength > file.Length - 8)
            throw new InvalidDataException($"is not a safetensors file (header length {headerLength} for a file of {file.Length} bytes)");
        var header = new byte[headerLength];
        file.ReadExactly(header);
        var dataBytes = file.Length - 8 - headerLength;

        var result = new Dictionary<string, SafetensorsEntry>();
        try
        {
            using var doc = JsonDocument.Parse(header);
            foreach (var tensor in doc.RootElement.EnumerateObject())
            {
                if (tensor.Name == "__metadata__") continue;
                var dtype = tensor.Value.GetProperty("dtype").GetString() ?? "";
                var shape = tensor.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = tensor.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64()).ToArray();
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataBytes)
                    throw new InvalidDataException($"tensor '{tensor.Name}' lies outside the file (truncated?)");
                result[tensor.Name] = new SafetensorsEntry(dtype, shape, offsets[0], offsets[1]);
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"has an unreadable safetensors header ({e.Message})");
        }
        return result;
    }
}
