using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LongSeqService.Api.Jobs;

/// <summary>
/// Reads POST /v1/jobs's body before anything looks at it: at most <see cref="MaxBytes"/>, valid UTF-8,
/// valid JSON, one flat object, no key twice. Each failure is a problem naming the field or the place in
/// the body, and no input is echoed longer than a few dozen characters.
/// </summary>
public static class JobBody
{
    /// <summary>A spec is ~60 short keys; 1 MiB leaves room for long paths and is never a 20 MB string.</summary>
    public const int MaxBytes = 1 << 20;

    public static async Task<(JsonObject? Body, ProblemHttpResult? Problem)> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength > MaxBytes) return (null, TooLarge());
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > MaxBytes) return (null, TooLarge());
            buffer.Write(chunk, 0, n);
        }
        var error = Check(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        if (error != null) return (null, Problems.Invalid([error], "The request body is not a valid job spec", status: StatusCodes.Status400BadRequest));
        return (JsonNode.Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length).Span)!.AsObject(), null);
    }

    /// <summary>The first problem of a body as a field error, or null when it is one JSON object with
    /// distinct keys and valid UTF-8 text throughout.</summary>
    public static SpecError? Check(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 8 });
        var keys = new HashSet<string>();
        string? property = null;
        try
        {
            if (!reader.Read()) return new SpecError("body", "empty; send the job spec as a JSON object");
            if (reader.TokenType != JsonTokenType.StartObject) return new SpecError("body", "expected a JSON object of job-spec keys");
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (!TryText(ref reader, out var name)) return new SpecError(property ?? "body", "a key is not valid UTF-8");
                    if (reader.CurrentDepth == 1)
                    {
                        property = name;
                        if (!keys.Add(name)) return new SpecError(WireNames.Shorten(name), "appears twice in the body; give each key once");
                    }
                }
                else if (reader.TokenType == JsonTokenType.String && !TryText(ref reader, out _))
                    return new SpecError(property is null ? "body" : WireNames.Shorten(property), "not valid UTF-8 text");
            }
        }
        catch (JsonException e)
        {
            var where = $"line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}";
            return new SpecError(property is null ? "body" : WireNames.Shorten(property), $"not valid JSON at {where}" +
                (e.Message.Contains("UTF-8", StringComparison.OrdinalIgnoreCase) ? " (invalid UTF-8)" : ""));
        }
        return null;
    }

    private static bool TryText(ref Utf8JsonReader reader, out string text)
    {
        try { text = reader.GetString()!; return true; }
        catch (InvalidOperationException) { text = ""; return false; }
    }

    private static ProblemHttpResult TooLarge() =>
        Problems.Invalid([new SpecError("body", $"larger than {MaxBytes / 1024} KiB; a job spec is a few hundred bytes")], "The request body is too large", status: StatusCodes.Status413PayloadTooLarge);
}
