using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LongSeqService.Api.Infrastructure;

/// <summary>Problem details (RFC 7807) in the shapes the endpoints use.</summary>
public static class Problems
{
    /// <summary>422 (or <paramref name="status"/>) with <c>errors</c> keyed by the field at fault.</summary>
    public static ProblemHttpResult Invalid(IEnumerable<SpecError> errors, string title = "The request is not valid", IDictionary<string, object?>? extensions = null,
        int status = StatusCodes.Status422UnprocessableEntity)
    {
        var byField = errors.GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray());
        var problem = new HttpValidationProblemDetails(byField) { Status = status, Title = title };
        if (extensions != null) foreach (var (k, v) in extensions) problem.Extensions[k] = v;
        return TypedResults.Problem(problem);
    }

    public static ProblemHttpResult Invalid(string field, string message) => Invalid([new SpecError(field, message)]);

    /// <summary>400 naming the query parameter at fault (unknown, or a value it cannot take).</summary>
    public static ProblemHttpResult BadQuery(string parameter, string message) =>
        Invalid([new SpecError(parameter, message)], "A query parameter is not valid", status: StatusCodes.Status400BadRequest);

    public static ProblemHttpResult Status(int status, string title, string? detail = null) =>
        TypedResults.Problem(title: title, detail: detail, statusCode: status);

    public static ProblemHttpResult Conflict(string detail) => Status(StatusCodes.Status409Conflict, "Conflict", detail);
}
