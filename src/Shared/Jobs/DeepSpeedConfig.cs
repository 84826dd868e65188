using System.Text.Json;

namespace LongSeqService.Shared.Jobs;

/// <summary>What a DeepSpeed config file means here: its ZeRO stage (zero_optimization.stage, 0 when
/// absent) and which states it offloads (optimizer, param). Everything else in it ("auto" batch sizes,
/// bucket sizes) follows from the spec's own keys.</summary>
public sealed record DeepSpeedConfig(int Stage, IReadOnlyList<string> Offload)
{
    public static DeepSpeedConfig Parse(string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new FormatException($"not valid JSON (line {e.LineNumber + 1}: {e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException("expected a JSON object");
            if (!doc.RootElement.TryGetProperty("zero_optimization", out var zero)) return new DeepSpeedConfig(0, []);
            if (zero.ValueKind != JsonValueKind.Object) throw new FormatException("zero_optimization must be an object");
            int stage = 0;
            if (zero.TryGetProperty("stage", out var s) && !(s.ValueKind == JsonValueKind.Number && s.TryGetInt32(out stage) && stage is >= 0 and <= 3))
                throw new FormatException($"zero_optimization.stage must be 0, 1, 2 or 3 (got {WireNames.Shorten(s.GetRawText())})");
            var offload = new List<string>();
            foreach (var (name, what) in new[] { ("offload_optimizer", "optimizer"), ("offload_param", "parameter") })
                if (zero.TryGetProperty(name, out var o) && o.ValueKind == JsonValueKind.Object && o.TryGetProperty("device", out var dev)
                    && dev.ValueKind == JsonValueKind.String && dev.GetString() is { } d && d != "none")
                    offload.Add(what);
            return new DeepSpeedConfig(stage, offload);
        }
    }
}
