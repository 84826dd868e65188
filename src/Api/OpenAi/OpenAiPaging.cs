namespace LongSeqService.Api.OpenAi;

/// <summary>OpenAI's cursor paging over a list already in its order.</summary>
public static class OpenAiPaging
{
    /// <summary>The items after the one with id <paramref name="after"/> (all of them when null), at most
    /// <paramref name="limit"/>, and whether more follow. Null when <paramref name="after"/> is not in the list.</summary>
    public static (List<T> Page, bool HasMore)? After<T>(IReadOnlyList<T> ordered, Func<T, string> id, string? after, int limit)
    {
        int start = 0;
        if (after != null)
        {
            int at = ordered.Select(id).ToList().IndexOf(after);
            if (at < 0) return null;
            start = at + 1;
        }
        var page = ordered.Skip(start).Take(limit).ToList();
        return (page, start + page.Count < ordered.Count);
    }

    /// <summary>The <c>limit</c> query value checked: <paramref name="fallback"/> when absent, else 1 to <paramref name="max"/>.</summary>
    public static int? Limit(int? given, int fallback, int max) => given is null ? fallback : given is >= 1 && given <= max ? given : null;
}
