using LongSeqService.Shared.Data;
using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Api.Models;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Datasets;

/// <summary>/v1/datasets: upload (validated as a whole, stored by content hash), list, inspect.</summary>
public static class DatasetEndpoints
{
    /// <summary>The multipart form of an upload (documents the request in OpenAPI).</summary>
    public sealed class UploadForm
    {
        /// <summary>The .json or .jsonl file.</summary>
        public required IFormFile File { get; init; }
        /// <summary>The dataset's format; detected when omitted.</summary>
        [ClosedSet(typeof(DatasetFormats))] public string? Formatting { get; init; }
    }

    public static void MapDatasetApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/datasets").WithTags("Datasets").RequireAuthorization(Policies.Tenant).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        group.MapPost("", Upload).WithName("uploadDataset")
            .Accepts<UploadForm>("multipart/form-data")
            .WithMetadata(new RequestSizeLimitAttribute(long.MaxValue)) // the handler enforces the configured limit while streaming
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .WithSummary("Upload a dataset (.json or .jsonl in alpaca or sharegpt format); the whole file is checked")
            .DisableAntiforgery();
        group.MapGet("", List).WithName("listDatasets").WithSummary("List the tenant's datasets, newest first (paged)");
        group.MapGet("/{id}", Get).WithName("getDataset").ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("A dataset: format, rows, length statistics");
    }

    /// <param name="after">The next_after of the previous page; omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<DatasetDto>>, ProblemHttpResult>> List(string? after, int? limit, ClaimsPrincipal user, ServiceDb db, CancellationToken ct)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        var tenant = user.TenantId();
        var q = db.Datasets.AsNoTracking().Where(d => d.TenantId == tenant);
        if (after != null)
        {
            if (await db.Datasets.AsNoTracking().Where(d => d.Id == after && d.TenantId == tenant).Select(d => (DateTime?)d.CreatedAt).FirstOrDefaultAsync(ct) is not { } at)
                return Paging.BadCursor(after, "one of this tenant's dataset ids");
            q = q.Where(d => d.CreatedAt < at || (d.CreatedAt == at && string.Compare(d.Id, after) < 0));
        }
        return TypedResults.Ok(await Paging.ReadAsync(q.OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id), take, d => d.ToDto(), d => d.Id, ct));
    }

    private static async Task<Results<Created<DatasetDto>, Ok<DatasetDto>, ProblemHttpResult>> Upload(
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, DatasetStore store, IOptions<LongSeqOptions> options, CancellationToken ct)
    {
        var limit = options.Value.MaxUploadBytes;
        DatasetUpload upload;
        try { upload = await DatasetUpload.ReadAsync(request, store.TempDir, limit, ct); }
        catch (DatasetUpload.TooLarge e) { return Problems.Status(StatusCodes.Status413PayloadTooLarge, "Dataset too large", e.Message); }
        catch (DatasetUpload.Malformed e) { return Problems.Status(StatusCodes.Status400BadRequest, "Malformed upload", JobPaths.Scrub(options.Value, e.Message)); }
        catch (DatasetUpload.Invalid e) { return Problems.Invalid(e.Field, e.Message); }
        using var _ = upload;
        if (upload.TempFile == null) return Problems.Status(StatusCodes.Status400BadRequest, "Malformed upload", "no 'file' part in the form");

        var report = upload.Utf8Error is { } at
            ? new DatasetReport(null, false, 0, [new DatasetLineError(at.Line, null, $"not valid UTF-8 (at byte {at.Byte} of the line); save the file as UTF-8")], 1, null)
            : await Task.Run(() => DatasetInspector.Inspect(upload.TempFile, upload.Formatting), ct);
        if (!report.IsValid)
            return Problems.Invalid(report.Errors.Select(e => new SpecError("file", e.ToString())), $"{upload.FileName} is not a valid dataset",
                new Dictionary<string, object?> { ["lines"] = report.Errors, ["error_count"] = report.ErrorCount, ["rows"] = report.Rows, ["format"] = report.Format });

        var tenant = user.TenantId();
        var existing = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.TenantId == tenant && d.Sha256 == upload.Sha256, ct);
        if (existing != null) return TypedResults.Ok(existing.ToDto());

        var ext = Path.GetExtension(upload.TempFile);
        var dataset = new Dataset
        {
            Id = "ds-" + Guid.NewGuid().ToString("N")[..16], TenantId = tenant, Name = upload.FileName!, Format = report.Format!,
            IsPreference = report.IsPreference, Rows = report.Rows, SizeBytes = upload.Size, Sha256 = upload.Sha256!,
            StoragePath = DatasetStore.RelativePath(upload.Sha256!, ext), CreatedAt = DateTime.UtcNow,
            CharMin = report.CharLength?.Min, CharMean = report.CharLength?.Mean, CharP50 = report.CharLength?.P50,
            CharP95 = report.CharLength?.P95, CharMax = report.CharLength?.Max,
        };
        db.Datasets.Add(dataset);
        bool placed = store.Commit(upload.TempFile, dataset.StoragePath);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            // The same tenant uploaded the same bytes concurrently and the other insert won; anything else
            // leaves no file behind that no row names.
            db.ChangeTracker.Clear();
            if (await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.TenantId == tenant && d.Sha256 == upload.Sha256, ct) is { } won) return TypedResults.Ok(won.ToDto());
            if (placed && !await db.Datasets.AnyAsync(d => d.StoragePath == dataset.StoragePath, ct)) File.Delete(store.FullPath(dataset.StoragePath));
            throw;
        }
        return TypedResults.Created($"/v1/datasets/{dataset.Id}", dataset.ToDto());
    }

    /// <summary>A dataset; with <c>?model=</c>, also its token lengths under that model's tokenizer and
    /// template, and how many examples a <c>cutoff_len</c> (default 2048) would truncate.</summary>
    /// <param name="id">The dataset's id.</param>
    /// <param name="model">A model name (as a job spec gives it): count token lengths under its tokenizer.</param>
    /// <param name="cutoff_len">With model: count the examples longer than this (default 2048).</param>
    /// <param name="template">With model: the chat template to render with (default: the model's).</param>
    private static async Task<Results<Ok<DatasetDto>, NotFound, ProblemHttpResult>> Get(string id, string? model, int? cutoff_len, string? template,
        ClaimsPrincipal user, ServiceDb db, ModelRegistry models, IOptions<LongSeqOptions> options, CancellationToken ct)
    {
        var tenant = user.TenantId();
        var dataset = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Id == id && d.TenantId == tenant, ct);
        if (dataset == null) return TypedResults.NotFound();
        if (model == null) return TypedResults.Ok(dataset.ToDto());

        var (resolved, error) = await models.ResolveAsync(model, tenant, ct);
        if (resolved == null) return Problems.Invalid("model", error!);
        if (template != null && !JobSpecKeys.Templates.Contains(template))
            return Problems.Invalid("template", $"'{template}' is not one of {string.Join(", ", JobSpecKeys.Templates)}");
        if (cutoff_len is < 1) return Problems.Invalid("cutoff_len", "must be at least 1");
        var stats = await Task.Run(() => TokenLengths.Compute(options.Value.DataPath(dataset.StoragePath), dataset.Format, resolved.Path, resolved.Shape, cutoff_len ?? 2048, template), ct);
        stats = stats with { Model = model };
        return TypedResults.Ok(dataset.ToDto() with { TokenStats = stats });
    }
}
