using System.Security.Cryptography;
using LongSeqService.Api.Infrastructure;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace LongSeqService.Api.Datasets;

/// <summary>
/// Reads a multipart upload as a stream: the file part goes straight to a temporary file while being
/// hashed and counted, so a body over the limit is refused (413) after at most the limit has been read,
/// and never held in memory.
/// </summary>
public sealed class DatasetUpload : IDisposable
{
    public string? TempFile { get; private set; }
    public string? FileName { get; private set; }
    public string? Formatting { get; private set; }
    public string? Sha256 { get; private set; }
    public long Size { get; private set; }

    public sealed class TooLarge(long limit) : Exception($"the upload exceeds the limit of {limit} bytes");
    public sealed class Malformed(string message) : Exception(message);

    public static async Task<DatasetUpload> ReadAsync(HttpRequest request, string tempDir, long limit, CancellationToken ct)
    {
        if (request.ContentLength > limit + (1 << 20)) throw new TooLarge(limit);
        var boundary = request.ContentType is { } ct0 && MediaTypeHeaderValue.TryParse(ct0, out var media) && media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            ? HeaderUtilities.RemoveQuotes(media.Boundary).Value : null;
        if (string.IsNullOrEmpty(boundary)) throw new Malformed("send multipart/form-data with a 'file' part (and optionally 'formatting')");
        var upload = new DatasetUpload();
        try
        {
            var reader = new MultipartReader(boundary, request.Body);
            while (await reader.ReadNextSectionAsync(ct) is { } section)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)) continue;
                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value;
                if (name == "file" && disposition.IsFileDisposition())
                    await upload.ReadFileAsync(section.Body, Path.GetFileName(HeaderUtilities.RemoveQuotes(disposition.FileName.HasValue ? disposition.FileName : disposition.FileNameStar).Value ?? "dataset.json"), tempDir, limit, ct);
                else if (name == "formatting")
                {
                    using var text = new StreamReader(section.Body);
                    var value = (await text.ReadToEndAsync(ct)).Trim();
                    upload.Formatting = value.Length == 0 ? null : value;
                }
            }
            return upload;
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            upload.Dispose();
            throw new Malformed("the multipart body could not be read: " + e.Message);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            upload.Dispose();
            throw new TooLarge(limit);
        }
        catch
        {
            upload.Dispose();
            throw;
        }
    }

    private async Task ReadFileAsync(Stream body, string fileName, string tempDir, long limit, CancellationToken ct)
    {
        if (TempFile != null) throw new Malformed("send one 'file' part");
        FileName = fileName;
        TempFile = Path.Combine(tempDir, $"{Guid.NewGuid():N}{Path.GetExtension(fileName).ToLowerInvariant()}");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var file = File.Create(TempFile);
        var buffer = new byte[81920];
        int n;
        while ((n = await body.ReadAsync(buffer, ct)) > 0)
        {
            Size += n;
            if (Size > limit) throw new TooLarge(limit);
            hash.AppendData(buffer, 0, n);
            await file.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        Sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public void Dispose()
    {
        if (TempFile != null && File.Exists(TempFile)) File.Delete(TempFile);
    }
}
