using System.Net.Http.Json;

namespace LongSeqService.Shared.Wire;

/// <summary>Reads a whole list from the API by following <see cref="Page{T}.NextAfter"/>, as an SDK's auto-pager does.</summary>
public static class PageReader
{
    /// <summary>Every item of the list at <paramref name="url"/> (which may carry its own query), page after page.</summary>
    public static async Task<List<T>> ListAsync<T>(this HttpClient client, string url, CancellationToken ct = default)
    {
        var all = new List<T>();
        string? after = null;
        for (int pages = 0; ; pages++)
        {
            if (pages > 100_000) throw new InvalidOperationException($"{url}: more than 100000 pages; the cursor does not advance");
            var sep = url.Contains('?') ? '&' : '?';
            var page = await client.GetFromJsonAsync<Page<T>>(after == null ? url : $"{url}{sep}after={Uri.EscapeDataString(after)}", WireJson.Options, ct)
                ?? throw new InvalidOperationException($"{url}: no page");
            all.AddRange(page.Data);
            if (!page.HasMore) return all;
            after = page.NextAfter ?? throw new InvalidOperationException($"{url}: has_more without next_after");
        }
    }
}
