using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Runs;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Hosts;

/// <summary>
/// What a host with its own disk (artifacts: remote) calls for a run it executes: download its inputs by content
/// hash, upload its outputs (checkpoints, the final model, trainer_log.jsonl) into the job's output folder,
/// resumably and checked by SHA-256. Every call carries the attempt, the fencing token: only the host and attempt
/// the job is bound to now may read its inputs or write its outputs; a stale attempt gets 409, and a file lands
/// only while the job's row is locked against a requeue (so nothing a fenced attempt sends lands).
/// </summary>
public static class RunArtifactEndpoints
{
    private static readonly string[] Live = [JobStates.Running, JobStates.Pausing, JobStates.Cancelling];

    public static void MapRunArtifactApi(this IEndpointRouteBuilder app)
    {
        var runs = app.MapGroup("/v1/hosts/{hostId:int}/runs/{jobId:guid}").WithTags("Runs").WithGroupName(HostEndpoints.Document).RequireAuthorization(Policies.Host)
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity);
        runs.MapGet("/inputs/{sha256}", Download).WithName("downloadRunInput").WithMetadata(new BinaryResponse())
            .WithSummary("Download one input of a run bound to this host and attempt, by its SHA-256 (ranges supported)");
        runs.MapGet("/outputs/{**path}", Status).WithName("getRunOutputUpload").WithSummary("How much of one output file the API holds (resume an upload from there)");
        runs.MapPut("/outputs/{**path}", Upload).WithName("uploadRunOutput").Accepts<Stream>("application/octet-stream")
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .WithSummary("Upload bytes of one output file at an offset; the file lands in the job's output folder once whole and its SHA-256 matches");
    }

    /// <summary>Null when <paramref name="hostId"/> is the caller's host and the job runs there as <paramref name="attempt"/>; else 403/404/409.</summary>
    private static async Task<ProblemHttpResult?> RefuseAsync(ServiceDb db, ClaimsPrincipal user, int hostId, Guid jobId, int attempt, CancellationToken ct)
    {
        if (await HostOwnership.RefuseAsync(db, user, hostId) is { } refused) return refused;
        return await db.Jobs.AnyAsync(j => j.Id == jobId && j.HostId == hostId && j.Attempt == attempt && Live.Contains(j.State), ct) ? null
            : Problems.Conflict($"job {jobId} attempt {attempt} is not running on host {hostId}: stop this trainer");
    }

    /// <param name="hostId">The host's id.</param>
    /// <param name="jobId">The job.</param>
    /// <param name="sha256">The input's SHA-256, as the start answer lists it.</param>
    /// <param name="attempt">The attempt the host runs (the fencing token).</param>
    private static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> Download(int hostId, Guid jobId, string sha256, int attempt,
        ClaimsPrincipal user, ServiceDb db, IOptions<LongSeqOptions> o, CancellationToken ct)
    {
        if (!OutputUploads.Sha256Hex().IsMatch(sha256)) return Problems.Invalid("sha256", "64 lowercase hex digits");
        if (await RefuseAsync(db, user, hostId, jobId, attempt, ct) is { } refused) return refused;
        var file = RunInputManifest.Find(JobPaths.RunDir(o.Value, jobId), attempt, sha256);
        return file == null ? Problems.Status(StatusCodes.Status404NotFound, "Not an input of this run", $"no input {sha256} in attempt {attempt} of job {jobId}")
            : TypedResults.File(File.OpenRead(file), "application/octet-stream", enableRangeProcessing: true);
    }

    /// <param name="hostId">The host's id.</param>
    /// <param name="jobId">The job.</param>
    /// <param name="path">The file's path in the job's output folder (checkpoint-4/model.safetensors).</param>
    /// <param name="attempt">The attempt the host runs (the fencing token).</param>
    /// <param name="sha256">The whole file's SHA-256, lowercase hex.</param>
    /// <param name="size">The whole file's size in bytes.</param>
    private static async Task<Results<Ok<UploadStatusDto>, ProblemHttpResult>> Status(int hostId, Guid jobId, string path, int attempt, string sha256, long size,
        ClaimsPrincipal user, ServiceDb db, OutputUploads uploads, ContentHashes hashes, IOptions<LongSeqOptions> o, CancellationToken ct)
    {
        path = Uri.UnescapeDataString(path);
        if (Check(path, sha256, size) is { } bad) return bad;
        if (await RefuseAsync(db, user, hostId, jobId, attempt, ct) is { } refused) return refused;
        var (runDir, output) = (JobPaths.RunDir(o.Value, jobId), JobPaths.OutputDir(o.Value, jobId));
        if (OutputUploads.Final(output, path) is not { } final) return Problems.Invalid("path", "must stay inside the job's output folder");
        var (received, complete) = await uploads.StatusAsync(runDir, final, OutputUploads.PartialPath(runDir, path, sha256, size), sha256, size, hashes, ct);
        return TypedResults.Ok(new UploadStatusDto(path, received, size, complete));
    }

    /// <param name="hostId">The host's id.</param>
    /// <param name="jobId">The job.</param>
    /// <param name="path">The file's path in the job's output folder (checkpoint-4/model.safetensors).</param>
    /// <param name="attempt">The attempt the host runs (the fencing token).</param>
    /// <param name="sha256">The whole file's SHA-256, lowercase hex.</param>
    /// <param name="size">The whole file's size in bytes.</param>
    /// <param name="offset">Where in the file the body's bytes go: the received count of the last answer (0 to start).</param>
    private static async Task<Results<Ok<UploadStatusDto>, ProblemHttpResult>> Upload(int hostId, Guid jobId, string path, int attempt, string sha256, long size, long offset,
        HttpRequest request, ClaimsPrincipal user, ServiceDb db, OutputUploads uploads, ContentHashes hashes, IOptions<LongSeqOptions> o, CancellationToken ct)
    {
        path = Uri.UnescapeDataString(path);
        if (Check(path, sha256, size) is { } bad) return bad;
        if (offset < 0 || offset > size) return Problems.Invalid("offset", $"0 to the file's size ({size})");
        if (await RefuseAsync(db, user, hostId, jobId, attempt, ct) is { } refused) return refused;
        var (runDir, output) = (JobPaths.RunDir(o.Value, jobId), JobPaths.OutputDir(o.Value, jobId));
        if (OutputUploads.Final(output, path) is not { } final || Directory.Exists(final)) return Problems.Invalid("path", "must name a file inside the job's output folder");
        // Above the chunk limit (which AppendAsync enforces with its own answer, 413 naming the body), below Kestrel's 30 MB default.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = OutputUploads.MaxChunkBytes + (2 << 20);

        var partial = OutputUploads.PartialPath(runDir, path, sha256, size);
        using var _ = await uploads.LockAsync(partial, ct);
        if (await uploads.StatusAsync(runDir, final, partial, sha256, size, hashes, ct) is { Complete: true })
            return TypedResults.Ok(new UploadStatusDto(path, size, size, true)); // sent again after a lost answer: already there
        var appended = await uploads.AppendAsync(partial, offset, size, request.Body, ct);
        if (appended.Error != null)
            return appended.TooLarge ? Problems.Status(StatusCodes.Status413PayloadTooLarge, "Chunk too large", appended.Error) : Problems.Invalid(appended.Field!, appended.Error);
        if (appended.Received < size) return TypedResults.Ok(new UploadStatusDto(path, appended.Received, size, false));

        var actual = await ContentHashes.OfFileAsync(partial, ct);
        if (actual != sha256)
        {
            File.Delete(partial);
            return Problems.Invalid("sha256", $"the {size} bytes received hash to {actual}, not {sha256}: the upload was discarded, send the file again");
        }
        // The fence: the job's row is share-locked while the file moves in, so a requeue (a new attempt) waits for
        // this rename, and after it no rename of this attempt can happen.
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var current = await db.Database.SqlQuery<int>($"SELECT 1 AS \"Value\" FROM jobs WHERE id = {jobId} AND host_id = {hostId} AND attempt = {attempt} AND state = ANY({Live}) FOR SHARE")
            .ToListAsync(ct);
        if (current.Count == 0)
        {
            File.Delete(partial);
            return Problems.Conflict($"job {jobId} attempt {attempt} is not running on host {hostId}: stop this trainer");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        File.Move(partial, final, overwrite: true);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(new UploadStatusDto(path, size, size, true));
    }

    private static ProblemHttpResult? Check(string path, string sha256, long size)
    {
        if (OutputUploads.PathError(path) is { } error) return Problems.Invalid("path", error);
        if (!OutputUploads.Sha256Hex().IsMatch(sha256)) return Problems.Invalid("sha256", "64 lowercase hex digits");
        if (size is < 0 or > OutputUploads.MaxFileBytes) return Problems.Invalid("size", $"0 to {OutputUploads.MaxFileBytes} bytes");
        return null;
    }
}
