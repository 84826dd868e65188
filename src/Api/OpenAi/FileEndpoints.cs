using System.Security.Claims;
using System.Security.Cryptography;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Datasets;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.OpenAi;

/// <summary>
/// /v1/files, OpenAI's files API for purpose <c>fine-tune</c>. A file is a dataset of the tenant — one row, one id,
/// seen here and at /v1/datasets — checked the way every dataset is (<see cref="DatasetInspector"/>) after
/// <see cref="OpenAiJsonl"/> turned OpenAI's chat or preference lines into sharegpt; the upload as sent is kept
/// beside it for GET …/content.
/// </summary>
public static class FileEndpoints
{
    public static void MapOpenAiFileApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/files").WithTags("OpenAI files").WithGroupName(OpenAiSurface.Document).RequireAuthorization(Policies.Tenant);
        group.MapPost("/", Upload).Accepts<IFormFile>("multipart/form-data").WithMetadata(new RequestSizeLimitAttribute(long.MaxValue)).DisableAntiforgery()
            .Produces<OpenAiErrorBody>(StatusCodes.Status400BadRequest).Produces<OpenAiErrorBody>(StatusCodes.Status413PayloadTooLarge)
            .WithSummary("Upload a fine-tuning file (OpenAI JSONL: chat or preference examples; form parts 'file' and 'purpose'=fine-tune)");
        group.MapGet("/", List).Produces<OpenAiErrorBody>(StatusCodes.Status400BadRequest).WithSummary("The tenant's files (its datasets), newest first");
        group.MapGet("/{id}", async Task<Results<Ok<OpenAiFile>, JsonHttpResult<OpenAiErrorBody>>> (string id, ClaimsPrincipal user, ServiceDb db) =>
            await Find(db, user, id) is { } d ? TypedResults.Ok(OpenAiFile.Of(d)) : OpenAiErrors.NotFound("file", id)).WithSummary("One file");
        group.MapDelete("/{id}", Delete).Produces<OpenAiErrorBody>(StatusCodes.Status409Conflict).WithSummary("Delete a file no unfinished job uses");
        group.MapGet("/{id}/content", Content).Produces(StatusCodes.Status200OK, contentType: "application/octet-stream").WithSummary("The file as uploaded");
    }

    private static Task<Dataset?> Find(ServiceDb db, ClaimsPrincipal user, string id)
    {
        var tenant = user.TenantId();
        return db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Id == id && d.TenantId == tenant);
    }

    private static async Task<Results<Ok<OpenAiFile>, JsonHttpResult<OpenAiErrorBody>>> Upload(
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, DatasetStore store, IOptions<LongSeqOptions> options, CancellationToken ct)
    {
        DatasetUpload upload;
        try { upload = await DatasetUpload.ReadAsync(request, store.TempDir, options.Value.MaxUploadBytes, ct); }
        catch (DatasetUpload.TooLarge e) { return OpenAiErrors.Error(StatusCodes.Status413PayloadTooLarge, e.Message, "file", "file_too_large"); }
        catch (DatasetUpload.Malformed e) { return OpenAiErrors.Invalid("file", JobPaths.Scrub(options.Value, e.Message)!); }
        catch (DatasetUpload.Invalid e) { return OpenAiErrors.Invalid(e.Field, e.Message); }
        using var _ = upload;
        if (upload.TempFile == null) return OpenAiErrors.Invalid("file", "no 'file' part in the form");
        if (upload.Purpose != OpenAiFile.FineTune)
            return OpenAiErrors.Invalid("purpose", upload.Purpose == null ? "'purpose' is required: fine-tune" : $"purpose '{upload.Purpose}' is not supported here; use fine-tune");
        if (upload.Utf8Error is { } at) return Refused(upload.FileName!, [new DatasetLineError(at.Line, null, $"not valid UTF-8 (at byte {at.Byte} of the line); save the file as UTF-8")], 1);

        var original = await File.ReadAllBytesAsync(upload.TempFile, ct);
        var converted = OpenAiJsonl.Convert(original);
        if (converted.ErrorCount > 0) return Refused(upload.FileName!, converted.Errors, converted.ErrorCount);
        var report = await Task.Run(() => DatasetInspector.Inspect(converted.Bytes, DatasetFormats.ShareGpt), ct);
        if (!report.IsValid) return Refused(upload.FileName!, report.Errors, Math.Max(1, report.ErrorCount));

        var tenant = user.TenantId();
        var sha = Convert.ToHexStringLower(SHA256.HashData(converted.Bytes));
        if (await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.TenantId == tenant && d.Sha256 == sha, ct) is { } same) return TypedResults.Ok(OpenAiFile.Of(same));

        var convertedTemp = Path.Combine(store.TempDir, $"{Guid.NewGuid():N}.jsonl");
        await File.WriteAllBytesAsync(convertedTemp, converted.Bytes, ct);
        var dataset = new Dataset
        {
            Id = "ds-" + Guid.NewGuid().ToString("N")[..16], TenantId = tenant, Name = upload.FileName!, Format = report.Format!,
            IsPreference = report.IsPreference, Rows = report.Rows, SizeBytes = upload.Size, Sha256 = sha,
            StoragePath = DatasetStore.RelativePath(sha, ".jsonl"), SourcePath = DatasetStore.RelativePath(upload.Sha256!, ".openai.jsonl"), CreatedAt = DateTime.UtcNow,
            CharMin = report.CharLength?.Min, CharMean = report.CharLength?.Mean, CharP50 = report.CharLength?.P50, CharP95 = report.CharLength?.P95, CharMax = report.CharLength?.Max,
        };
        store.Commit(convertedTemp, dataset.StoragePath);
        store.Commit(upload.TempFile, dataset.SourcePath);
        db.Datasets.Add(dataset);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            // The same bytes, uploaded concurrently by the same tenant: the other insert won, answer with its row.
            db.ChangeTracker.Clear();
            if (await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.TenantId == tenant && d.Sha256 == sha, ct) is { } won) return TypedResults.Ok(OpenAiFile.Of(won));
            throw;
        }
        return TypedResults.Ok(OpenAiFile.Of(dataset));
    }

    /// <summary>400 naming the first bad lines (the check counts them all).</summary>
    private static JsonHttpResult<OpenAiErrorBody> Refused(string fileName, IReadOnlyList<DatasetLineError> errors, int count) =>
        OpenAiErrors.Error(StatusCodes.Status400BadRequest,
            $"{fileName} is not a valid fine-tuning file ({count} bad line{(count == 1 ? "" : "s")}): {string.Join("; ", errors)}", "file", "invalid_file_format");

    private static async Task<Results<Ok<OpenAiList<OpenAiFile>>, JsonHttpResult<OpenAiErrorBody>>> List(
        ClaimsPrincipal user, ServiceDb db, string? purpose, string? after, int? limit, string? order)
    {
        if (purpose is not (null or OpenAiFile.FineTune)) return OpenAiErrors.Invalid("purpose", $"only fine-tune files are kept here, not '{purpose}'");
        if (order is not (null or "asc" or "desc")) return OpenAiErrors.Invalid("order", "asc or desc");
        if (OpenAiPaging.Limit(limit, 10_000, 10_000) is not { } take) return OpenAiErrors.Invalid("limit", "1 to 10000");
        var tenant = user.TenantId();
        var rows = await db.Datasets.AsNoTracking().Where(d => d.TenantId == tenant).OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).ToListAsync();
        if (order == "asc") rows.Reverse();
        if (OpenAiPaging.After(rows.Select(OpenAiFile.Of).ToList(), f => f.Id, after, take) is not var (page, more)) return OpenAiErrors.Invalid("after", $"no file '{after}'");
        return TypedResults.Ok(OpenAiList<OpenAiFile>.Of(page, more, f => f.Id));
    }

    private static async Task<Results<Ok<OpenAiFileDeleted>, JsonHttpResult<OpenAiErrorBody>>> Delete(string id, ClaimsPrincipal user, ServiceDb db, DatasetStore store)
    {
        if (await Find(db, user, id) is not { } dataset) return OpenAiErrors.NotFound("file", id);
        var tenant = user.TenantId();
        // A job that has not finished reads the file when it (re)starts; keep it until then.
        var unfinished = await db.Jobs.AsNoTracking().Where(j => j.TenantId == tenant && !JobStates.Terminal.Contains(j.State)).ToListAsync();
        if (unfinished.FirstOrDefault(j => Uses(j, id)) is { } user0)
            return OpenAiErrors.Conflict($"file {id} is used by job {user0.Id} ({user0.State}); delete it once that job has finished (or cancel the job)");
        await db.Datasets.Where(d => d.Id == id && d.TenantId == tenant).ExecuteDeleteAsync();
        foreach (var path in new[] { dataset.StoragePath, dataset.SourcePath })
            if (path != null && !await db.Datasets.AnyAsync(d => d.StoragePath == path || d.SourcePath == path)) File.Delete(store.FullPath(path));
        return TypedResults.Ok(new OpenAiFileDeleted(id, "file", true));
    }

    private static bool Uses(Job job, string datasetId)
    {
        var spec = job.ParsedSpec();
        return new[] { job.DatasetId, spec.Dataset, spec.EvalDataset }.Any(list => list != null && JobSubmission.DatasetIds(list).Contains(datasetId));
    }

    private static async Task<Results<PhysicalFileHttpResult, JsonHttpResult<OpenAiErrorBody>>> Content(string id, ClaimsPrincipal user, ServiceDb db, DatasetStore store)
    {
        if (await Find(db, user, id) is not { } d) return OpenAiErrors.NotFound("file", id);
        return TypedResults.PhysicalFile(store.FullPath(d.SourcePath ?? d.StoragePath), "application/octet-stream", d.Name);
    }
}
