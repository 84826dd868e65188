using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace LongSeqService.Api.OpenAi;

/// <summary>OpenAI's error body, <c>{"error": {"message", "type", "param", "code"}}</c>: what the OpenAI SDKs parse
/// (ClientResultException's message), so every error on /v1/files and /v1/fine_tuning has this shape, not problem details.</summary>
public sealed record OpenAiError(string Message, string Type, string? Param, string? Code);

public sealed record OpenAiErrorBody(OpenAiError Error);

public static class OpenAiErrors
{
    public const string InvalidRequest = "invalid_request_error";

    /// <summary>The paths of the OpenAI surface (the native API answers problem details).</summary>
    public static bool IsOpenAiPath(PathString path) => path.StartsWithSegments("/v1/files") || path.StartsWithSegments("/v1/fine_tuning");

    public static JsonHttpResult<OpenAiErrorBody> Error(int status, string message, string? param = null, string? code = null, string type = InvalidRequest) =>
        TypedResults.Json(new OpenAiErrorBody(new OpenAiError(message, type, param, code)), statusCode: status);

    public static JsonHttpResult<OpenAiErrorBody> Invalid(string param, string message) => Error(StatusCodes.Status400BadRequest, message, param);

    public static JsonHttpResult<OpenAiErrorBody> NotFound(string what, string id) =>
        Error(StatusCodes.Status404NotFound, $"No {what} with id '{id}' (or it is another tenant's).", "id", "not_found");

    public static JsonHttpResult<OpenAiErrorBody> Conflict(string message) => Error(StatusCodes.Status409Conflict, message, null, "conflict");

    /// <summary>A problem from the native code paths (job submission, job control) in OpenAI's shape: the first field
    /// at fault becomes <c>param</c> (renamed by <paramref name="param"/> to the name the client sent), every message joined.
    /// A 422 of the native API is OpenAI's 400.</summary>
    public static JsonHttpResult<OpenAiErrorBody> From(ProblemHttpResult problem, Func<string, string>? param = null)
    {
        int status = problem.StatusCode == StatusCodes.Status422UnprocessableEntity ? StatusCodes.Status400BadRequest : problem.StatusCode;
        if (problem.ProblemDetails is HttpValidationProblemDetails { Errors.Count: > 0 } v)
        {
            var first = v.Errors.First().Key;
            var all = v.Errors.SelectMany(kv => kv.Value.Select(m => $"{(param ?? (k => k))(kv.Key)}: {m}"));
            return Error(status, string.Join("; ", all), (param ?? (k => k))(first));
        }
        return Error(status, problem.ProblemDetails.Detail ?? problem.ProblemDetails.Title ?? "the request failed");
    }

    /// <summary>Bare status codes on the OpenAI paths (401 from authentication, 403, 404 of an unknown route, 405, a 400 of
    /// a parameter that does not bind) get the envelope too; the native paths keep their problem details.</summary>
    public static void UseOpenAiErrors(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (!IsOpenAiPath(context.Request.Path)) { await next(context); return; }
        if (context.Features.Get<IStatusCodePagesFeature>() is { } pages) pages.Enabled = false;
        await next(context);
        var response = context.Response;
        if (response.StatusCode < 400 || response.HasStarted || response.ContentLength > 0 || response.ContentType != null) return;
        var (message, code) = response.StatusCode switch
        {
            StatusCodes.Status401Unauthorized => ("Missing or invalid API key: send Authorization: Bearer <key>.", "invalid_api_key"),
            StatusCodes.Status403Forbidden => ("This key may not do that (a tenant key is needed).", "forbidden"),
            StatusCodes.Status404NotFound => ($"No such resource: {context.Request.Method} {context.Request.Path}.", "not_found"),
            StatusCodes.Status405MethodNotAllowed => ($"{context.Request.Method} is not allowed on {context.Request.Path}.", "method_not_allowed"),
            _ => ($"The request failed ({response.StatusCode}).", (string?)null),
        };
        await Error(response.StatusCode, message, null, code, response.StatusCode == 401 ? "authentication_error" : InvalidRequest).ExecuteAsync(context);
    });
}
