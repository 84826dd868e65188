using LongSeqService.Scheduler.Data;

namespace LongSeqService.Api.OpenAi;

/// <summary>A dataset as OpenAI's files API shows a file (object "file"): the same row as /v1/datasets/{id}, under the same id.</summary>
public sealed record OpenAiFile(string Id, string Object, long Bytes, long CreatedAt, string Filename, string Purpose, string Status, string? StatusDetails, long? ExpiresAt)
{
    public const string FineTune = "fine-tune";

    public static OpenAiFile Of(Dataset d) =>
        new(d.Id, "file", d.SizeBytes, new DateTimeOffset(d.CreatedAt, TimeSpan.Zero).ToUnixTimeSeconds(), d.Name, FineTune, "processed", null, null);
}

/// <summary>OpenAI's list envelope: <c>{"object": "list", "data": […], "has_more", "first_id", "last_id"}</c>.</summary>
public sealed record OpenAiList<T>(string Object, IReadOnlyList<T> Data, bool HasMore, string? FirstId, string? LastId)
{
    public static OpenAiList<T> Of(IReadOnlyList<T> data, bool hasMore, Func<T, string> id) =>
        new("list", data, hasMore, data.Count > 0 ? id(data[0]) : null, data.Count > 0 ? id(data[^1]) : null);
}

public sealed record OpenAiFileDeleted(string Id, string Object, bool Deleted);
