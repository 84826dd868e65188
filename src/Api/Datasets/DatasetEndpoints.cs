using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
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
        public required IFormFile File { get; init; }
        /// <summary>alpaca or sharegpt; detected when omitted.</summary>
        public string? Formatting { get; init; }
    }

    public static void MapDatasetApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/datasets").WithTags("Datasets").RequireAuthorization(Policies.Tenant).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        group.MapPost("/", Upload)
            .Accepts<UploadForm>("multipart/form-data")
            .WithMetadata(new RequestSizeLimitAttribute(long.MaxValue)) // the handler enforces the configured limit while streaming
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .WithSummary("Upload a dataset (.json or .jsonl in alpaca or sharegpt format); the whole file is checked")
            .DisableAntiforgery();
        group.MapGet("/", async (ClaimsPrincipal user, ServiceDb db) =>
        {
            var tenant = user.TenantId();
            var rows = await db.Datasets.AsNoTracking().Where(d => d.TenantId == tenant).OrderByDescending(d => d.CreatedAt).ToListAsync();
            return TypedResults.Ok(new DatasetPage(rows.Select(d => d.ToDto()).ToList()));
        }).WithSummary("List the tenant's datasets");
        group.MapGet("/{id}", Get).ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithSummary("A dataset: format, rows, length statistics");
    }

    private static async Task<Results<Created<DatasetDto>, Ok<DatasetDto>, ProblemHttpResult>> Upload(
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, DatasetStore store, IOptions<LongSeqOptions> options, CancellationToken ct)
    {
        var limit = options.Value.MaxUploadBytes;
        DatasetUpload upload;
        try { upload = await DatasetUpload.ReadAsync(request, store.TempDir, limit, ct); }
        catch (DatasetUpload.TooLarge e) { return Problems.Status(StatusCodes.Status413PayloadTooLarge, "Dataset too large", e.Message); }
        catch (DatasetUpload.Malformed e) { return Problems.Status(StatusCodes.Status400BadRequest, "Malformed upload", e.Message); }
        using var _ = upload;
        if (upload.TempFile == null) return Problems.Status(StatusCodes.Status400BadRequest, "Malformed upload", "no 'file' part in the form");

        var report = await Task.Run(() => DatasetInspector.Inspect(upload.TempFile, upload.Formatting), ct);
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
            StoragePath = store.Commit(upload.TempFile, upload.Sha256!, ext), CreatedAt = DateTime.UtcNow,
            CharMin = report.CharLength?.Min, CharMean = report.CharLength?.Mean, CharP50 = report.CharLength?.P50,
            CharP95 = report.CharLength?.P95, CharMax = report.CharLength?.Max,
        };
        db.Datasets.Add(dataset);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            // The same tenant uploaded the same bytes concurrently; the other insert won.
            return TypedResults.Ok((await db.Datasets.AsNoTracking().FirstAsync(d => d.TenantId == tenant && d.Sha256 == upload.Sha256, ct)).ToDto());
        }
        return TypedResults.Created($"/v1/datasets/{dataset.Id}", dataset.ToDto());
    }

    private static async Task<Results<Ok<DatasetDto>, NotFound, ProblemHttpResult>> Get(string id, string? model, ClaimsPrincipal user, ServiceDb db)
    {
        var tenant = user.TenantId();
        var dataset = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Id == id && d.TenantId == tenant);
        if (dataset == null) return TypedResults.NotFound();
        if (model != null)
        {
            ModelShape.TryResolve(model, out var error);
            if (error != null) return Problems.Invalid("model", error);
        }
        // Token-length statistics need the model's tokenizer and chat template, which live in the
        // trainer (TorchSharp side); the Api does not compute them yet, so token_stats stays null.
        return TypedResults.Ok(dataset.ToDto());
    }
}
