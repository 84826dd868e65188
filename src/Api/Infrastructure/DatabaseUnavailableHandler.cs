using System.Net.Sockets;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;

namespace LongSeqService.Api.Infrastructure;

/// <summary>
/// The database is away (stopped, restarting, unreachable): answer 503 with Retry-After, so callers — a
/// trainer host replaying its spool, a dashboard — know to come back, instead of a 500 that reads like a bug.
/// Any other exception falls through to the default handler.
/// </summary>
public sealed class DatabaseUnavailableHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        if (!IsDatabaseAway(exception) || context.Response.HasStarted) return false;
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = "5";
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = StatusCodes.Status503ServiceUnavailable, Title = "The database is unavailable", Detail = "try again shortly" },
        });
    }

    /// <summary>Connection-level failures only (refused, reset, shutting down, timed out), wherever EF wrapped them.</summary>
    public static bool IsDatabaseAway(Exception? e)
    {
        for (; e != null; e = e.InnerException)
        {
            if (e is PostgresException pg)
                return pg.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
                    or PostgresErrorCodes.ConnectionFailure or PostgresErrorCodes.ConnectionException or PostgresErrorCodes.TooManyConnections;
            if (e is NpgsqlException { IsTransient: true } or SocketException or TimeoutException) return true;
        }
        return false;
    }
}
