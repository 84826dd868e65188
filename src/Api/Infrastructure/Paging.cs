using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Infrastructure;

/// <summary>
/// Cursor pagination for every list (<c>?after=&amp;limit=</c> → <see cref="Page{T}"/>): a page reads one row
/// more than it returns, so <c>has_more</c> is known without counting, and the cursor is the last item's key,
/// so a page never repeats or skips an item when rows are added meanwhile.
/// </summary>
public static class Paging
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 500;
    public const string AfterDescription = "The next_after of the previous page; omit it for the first page.";
    public const string LimitDescription = "Items per page, 1 to 500 (default 50).";

    /// <summary>The page size <paramref name="limit"/> asks for, or a 400 naming <c>limit</c>.</summary>
    public static ProblemHttpResult? Limit(int? limit, out int take)
    {
        take = limit ?? DefaultLimit;
        return take is < 1 or > MaxLimit ? Problems.BadQuery("limit", $"must be 1 to {MaxLimit}") : null;
    }

    /// <summary>400 naming <c>after</c>: a cursor this list never handed out.</summary>
    public static ProblemHttpResult BadCursor(string after, string what) =>
        Problems.BadQuery("after", $"'{Shared.Jobs.WireNames.Shorten(after)}' is not {what}; give the next_after of the previous page");

    /// <summary>A page of a query that is already ordered and starts after the cursor.</summary>
    public static async Task<Page<TOut>> ReadAsync<TRow, TOut>(IQueryable<TRow> ordered, int limit, Func<TRow, TOut> map, Func<TRow, string> cursor, CancellationToken ct = default)
    {
        var rows = await ordered.Take(limit + 1).ToListAsync(ct);
        return Of(rows, limit, map, cursor);
    }

    /// <summary>A page of a list held in memory (a directory listing, the model registry), in its own order.
    /// Null when <paramref name="after"/> names no item of it.</summary>
    public static Page<T>? Slice<T>(IReadOnlyList<T> items, string? after, int limit, Func<T, string> key)
    {
        int start = 0;
        if (after != null)
        {
            int at = items.ToList().FindIndex(i => key(i) == after);
            if (at < 0) return null;
            start = at + 1;
        }
        return Of(items.Skip(start).Take(limit + 1).ToList(), limit, i => i, key);
    }

    /// <summary>A page of a list held in memory in the order of its key: the items past the cursor
    /// (<paramref name="isPast"/>), so a cursor stays good when its own item is gone (a checkpoint rotated away).</summary>
    public static Page<T> Past<T>(IEnumerable<T> ordered, Func<T, bool>? isPast, int limit, Func<T, string> key) =>
        Of((isPast == null ? ordered : ordered.Where(isPast)).Take(limit + 1).ToList(), limit, i => i, key);

    private static Page<TOut> Of<TRow, TOut>(List<TRow> rows, int limit, Func<TRow, TOut> map, Func<TRow, string> cursor)
    {
        bool more = rows.Count > limit;
        if (more) rows.RemoveAt(limit);
        return new Page<TOut>(rows.Select(map).ToList(), more, more ? cursor(rows[^1]) : null);
    }
}
