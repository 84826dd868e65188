using System.Reflection;
using Microsoft.AspNetCore.Mvc;

namespace LongSeqService.Api.Infrastructure;

/// <summary>
/// Refuses a query parameter the endpoint does not declare with a 400 naming it: <c>GET /v1/jobs?afterr=…</c>
/// silently ignored would hand back the first page again, and an SDK's auto-pager would loop on it forever.
/// The declared names are the handler's own query parameters (its simple-typed parameters that are not route
/// values, or their <c>[FromQuery(Name)]</c>), the same list the OpenAPI document shows.
/// </summary>
public static class KnownQueryParameters
{
    public static TBuilder RefuseUnknownQueryParameters<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilterFactory((context, next) =>
        {
            var known = Names(context.MethodInfo);
            return invocation =>
            {
                var http = invocation.HttpContext;
                foreach (var key in http.Request.Query.Keys)
                    if (!known.Contains(key) || http.Request.RouteValues.ContainsKey(key))
                        return ValueTask.FromResult<object?>(Problems.BadQuery(key, known.Count == 0
                            ? "unknown query parameter; this endpoint takes none"
                            : $"unknown query parameter; this endpoint takes {string.Join(", ", known.Order(StringComparer.Ordinal))}"));
                return next(invocation);
            };
        });

    private static HashSet<string> Names(MethodInfo method) =>
        method.GetParameters()
            .Where(p => p.GetCustomAttribute<FromQueryAttribute>() != null || (IsSimple(p.ParameterType) && p.GetCustomAttribute<FromRouteAttribute>() == null
                && p.GetCustomAttribute<FromHeaderAttribute>() == null && p.GetCustomAttribute<FromBodyAttribute>() == null))
            .Select(p => p.GetCustomAttribute<FromQueryAttribute>()?.Name ?? p.Name!)
            .ToHashSet(StringComparer.Ordinal);

    private static bool IsSimple(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(Guid) || t == typeof(DateTime) || t == typeof(DateTimeOffset);
    }
}
