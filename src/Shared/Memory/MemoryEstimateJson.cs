using System.Text.Json.Nodes;

namespace LongSeqService.Shared.Memory;

/// <summary>The estimate as JSON, one shape for <c>trainer estimate --json</c> and <c>POST /v1/estimates</c>:
/// <c>peak_bytes</c> beside the resident terms and every moment's terms.</summary>
public static class MemoryEstimateJson
{
    public static JsonObject ToJson(MemoryEstimate e, MemoryRequest r) => new()
    {
        ["peak_bytes"] = e.PeakBytes,
        ["peak"] = MemoryEstimate.Format(e.PeakBytes),
        ["peak_moment"] = e.PeakMoment.Name,
        ["local_tokens"] = e.LocalTokens,
        ["loss_head"] = r.LossHead.ToString().ToLowerInvariant(),
        ["zero_stage"] = r.ZeroStage,
        ["resident"] = Terms(e.Resident),
        ["moments"] = new JsonObject(e.Moments.Select(m => KeyValuePair.Create(m.Name, (JsonNode?)new JsonObject
        {
            ["bytes"] = m.Bytes,
            ["terms"] = Terms(m.Terms),
        }))),
    };

    private static JsonObject Terms(IEnumerable<MemoryTerm> terms) =>
        new(terms.Select(t => KeyValuePair.Create(t.Name, (JsonNode?)new JsonObject { ["bytes"] = t.Bytes, ["detail"] = t.Detail })));
}
