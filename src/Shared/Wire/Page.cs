namespace LongSeqService.Shared.Wire;

/// <summary>
/// One page of any list the API returns, the same envelope everywhere: pass next_after as
/// <c>?after=</c> to get the next page, until has_more is false (an SDK's auto-pager needs
/// nothing else).
/// </summary>
/// <param name="Data">The items of this page, in the list's order.</param>
/// <param name="HasMore">True when items follow this page.</param>
/// <param name="NextAfter">The cursor of the next page (give it as <c>after</c>); null on the last page.</param>
public sealed record Page<T>(IReadOnlyList<T> Data, bool HasMore, string? NextAfter);
