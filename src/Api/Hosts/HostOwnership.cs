using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler.Data;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Hosts;

/// <summary>A host key is exactly one host: the key that first registered a host id is the only one that
/// may speak for it (register, heartbeat, start, metrics, finish). Checked on every host call.</summary>
public static class HostOwnership
{
    public static Guid KeyId(this ClaimsPrincipal user) => Guid.Parse(user.FindFirstValue(ApiKeys.KeyIdClaim)!);

    /// <summary>Null when the caller's key owns host <paramref name="hostId"/>; else 404 (no such host: register
    /// again) or 403 (another key's host).</summary>
    public static async Task<ProblemHttpResult?> RefuseAsync(ServiceDb db, ClaimsPrincipal user, int hostId)
    {
        var owner = await db.Hosts.AsNoTracking().Where(h => h.Id == hostId).Select(h => new { h.KeyId }).FirstOrDefaultAsync();
        if (owner == null) return Problems.Status(StatusCodes.Status404NotFound, "Unknown host", $"no host {hostId}; register again");
        return owner.KeyId == user.KeyId() ? null : Forbidden(hostId);
    }

    public static ProblemHttpResult Forbidden(int hostId) =>
        Problems.Status(StatusCodes.Status403Forbidden, "Not this key's host", $"host {hostId} is bound to another host key; a host key speaks for one host only");
}
