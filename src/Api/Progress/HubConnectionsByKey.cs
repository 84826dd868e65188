using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;

namespace LongSeqService.Api.Progress;

/// <summary>
/// The open /hubs/progress connections of this process by the API key that opened them. A hub connection
/// is authenticated once, when it opens, so without this a revoked key would go on receiving its tenant's
/// progress for as long as the connection lasts; revoking closes them instead.
/// </summary>
public sealed class HubConnectionsByKey
{
    private readonly ConcurrentDictionary<string, (Guid KeyId, HubCallerContext Context)> _open = new();

    public void Opened(Guid keyId, HubCallerContext context) => _open[context.ConnectionId] = (keyId, context);

    public void Closed(string connectionId) => _open.TryRemove(connectionId, out _);

    /// <summary>Aborts every connection opened with <paramref name="keyId"/>; returns how many.</summary>
    public int CloseAll(Guid keyId)
    {
        int closed = 0;
        foreach (var (_, (key, context)) in _open)
            if (key == keyId) { context.Abort(); closed++; }
        return closed;
    }
}
