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
    /// <summary>The OpenAI files API's <c>purpose</c> part (POST /v1/files); null when not sent.</summary>
    public string? Purpose { get; private set; }
    public string? Sha256 { get; private set; }
    public long Size { get; private set; }

    /// <summary>Where the file first is not UTF-8 (checked while it streams in); null when it is.</summary>
    public (int Line, long Byte)? Utf8Error { get; private set; }

    /// <summary>Longest file name kept (bytes of UTF-8, as most filesystems count), and longest <c>formatting</c> value read.</summary>
    public const int MaxFileNameBytes = 255, MaxFormattingChars = 32;

    public sealed class TooLarge(long limit) : Exception($"the upload exceeds the limit of {limit} bytes");
    public sealed class Malformed(string message) : Exception(message);
    /// <summary>A part of the form that is readable but not acceptable (422 on <see cref="Field"/>).</summary>
    public sealed class Invalid(string field, string message) : Exception(message) { public string Field { get; } = field; }

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
                    await upload.ReadFileAsync(section.Body, CheckedFileName(HeaderUtilities.RemoveQuotes(disposition.FileName.HasValue ? disposition.FileName : disposition.FileNameStar).Value), tempDir, limit, ct);
                else if (name is "formatting" or "purpose")
                {
                    using var text = new StreamReader(section.Body);
                    var buffer = new char[MaxFormattingChars + 1];
                    var value = buffer.AsSpan(0, await text.ReadBlockAsync(buffer, ct)).Trim().ToString();
                    if (value.Length > MaxFormattingChars)
                        throw new Invalid(name, name == "purpose" ? "fine-tune" : "one of alpaca, sharegpt (or leave it out to detect the format)");
                    if (name == "purpose") upload.Purpose = value;
                    else upload.Formatting = value.Length == 0 ? null : value;
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

    /// <summary>The name the dataset is kept under: its last path segment, printable, at most <see cref="MaxFileNameBytes"/>
    /// bytes — checked before anything is written, since a name PostgreSQL cannot store (NUL) would fail only after.</summary>
    private static string CheckedFileName(string? given)
    {
        var name = Path.GetFileName(given ?? "dataset.json");
        if (name.Length == 0) name = "dataset.json";
        if (name.Any(char.IsControl)) throw new Invalid("file", "the file name contains control characters (such as NUL); rename the file");
        int bytes;
        try { bytes = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetByteCount(name); }
        catch (System.Text.EncoderFallbackException) { throw new Invalid("file", "the file name is not valid Unicode; rename the file"); }
        if (bytes > MaxFileNameBytes) throw new Invalid("file", $"the file name is {bytes} bytes long; the limit is {MaxFileNameBytes}");
        return name;
    }

    private async Task ReadFileAsync(Stream body, string fileName, string tempDir, long limit, CancellationToken ct)
    {
        if (TempFile != null) throw new Malformed("send one 'file' part");
        FileName = fileName;
        TempFile = Path.Combine(tempDir, $"{Guid.NewGuid():N}{Path.GetExtension(fileName).ToLowerInvariant()}");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var utf8 = new Utf8Check();
        await using var file = File.Create(TempFile);
        var buffer = new byte[81920];
        int n;
        while ((n = await body.ReadAsync(buffer, ct)) > 0)
        {
            Size += n;
            if (Size > limit) throw new TooLarge(limit);
            hash.AppendData(buffer, 0, n);
            utf8.Append(buffer.AsSpan(0, n));
            await file.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        utf8.Append([], final: true);
        Utf8Error = utf8.Error;
        Sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public void Dispose()
    {
        if (TempFile != null && File.Exists(TempFile)) File.Delete(TempFile);
    }
}
