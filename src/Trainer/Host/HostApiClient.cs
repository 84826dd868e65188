using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Trainer.Host;

/// <summary>The host's side of the API's host endpoints (REST with the host key). Transient failures (no
/// connection, a timeout, 5xx such as the 503 of an API whose database is away) throw
/// <see cref="HttpRequestException"/>; refusals (403/404/409) come back as their status.</summary>
public sealed class HostApiClient : IDisposable
{
    private readonly HttpClient _http;

    public HostApiClient(Uri api, string token, HttpMessageHandler? handler = null)
    {
        _http = handler != null ? new HttpClient(handler, disposeHandler: false) : new HttpClient();
        _http.BaseAddress = api;
        _http.Timeout = TimeSpan.FromSeconds(30);
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public async Task<RegisterHostResponse> RegisterAsync(RegisterHostRequest request, CancellationToken ct)
    {
        using var response = await _http.PostAsJsonAsync("/v1/hosts/register", request, WireJson.Options, ct);
        await EnsureAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<RegisterHostResponse>(WireJson.Options, ct))!;
    }

    /// <summary>Null when the API no longer knows this host (it must register again).</summary>
    public async Task<HeartbeatResponse?> HeartbeatAsync(int hostId, HeartbeatRequest request, CancellationToken ct)
    {
        using var response = await _http.PostAsJsonAsync($"/v1/hosts/{hostId}/heartbeat", request, WireJson.Options, ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        await EnsureAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<HeartbeatResponse>(WireJson.Options, ct);
    }

    /// <summary>Null when the run is not (or no longer) this host's to start: a duplicate or stale lease.</summary>
    public async Task<StartRunResponse?> StartRunAsync(int hostId, Guid jobId, int attempt, CancellationToken ct)
    {
        using var response = await _http.PostAsJsonAsync($"/v1/hosts/{hostId}/runs/{jobId}/start", new StartRunRequest(attempt), WireJson.Options, ct);
        if (IsRefusal(response.StatusCode)) return null;
        await EnsureAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<StartRunResponse>(WireJson.Options, ct);
    }

    /// <summary>Posts one spooled report; true when the API took it, false when it refused it for good
    /// (a stale attempt, not this key's host).</summary>
    public async Task<bool> ReportAsync(string path, object body, CancellationToken ct)
    {
        using var response = await _http.PostAsJsonAsync(path, body, WireJson.Options, ct);
        // Any 4xx but a timeout or throttling is an answer that will not change: drop the report, do not block the spool.
        if ((int)response.StatusCode is >= 400 and < 500 && response.StatusCode is not (HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests)) return false;
        await EnsureAsync(response, ct);
        return true;
    }

    /// <summary>Appends input <paramref name="sha256"/> of the run to <paramref name="to"/> from its current length (a Range
    /// request when it holds part of it already). False when the API refused it for good (not this attempt's input).</summary>
    public async Task<bool> DownloadInputAsync(int hostId, Guid jobId, int attempt, string sha256, FileStream to, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/hosts/{hostId}/runs/{jobId}/inputs/{sha256}?attempt={attempt}");
        if (to.Length > 0) request.Headers.Range = new RangeHeaderValue(to.Length, null);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (IsRefusal(response.StatusCode)) return false;
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable) return true; // it has every byte already
        await EnsureAsync(response, ct);
        if (response.StatusCode != HttpStatusCode.PartialContent) to.SetLength(0); // the whole file came back
        to.Seek(0, SeekOrigin.End);
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        await body.CopyToAsync(to, 1 << 20, ct);
        await to.FlushAsync(ct);
        return true;
    }

    private static string OutputUrl(int hostId, Guid jobId, string path, int attempt, string sha256, long size) =>
        $"/v1/hosts/{hostId}/runs/{jobId}/outputs/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}?attempt={attempt}&sha256={sha256}&size={size}";

    /// <summary>How much of an output file the API holds. Throws <see cref="StaleAttemptException"/> on 409, <see cref="InvalidDataException"/> on 4xx refusals of the request itself.</summary>
    public async Task<UploadStatusDto> UploadStatusAsync(int hostId, Guid jobId, int attempt, string path, string sha256, long size, CancellationToken ct)
    {
        using var response = await _http.GetAsync(OutputUrl(hostId, jobId, path, attempt, sha256, size), ct);
        return await UploadAnswerAsync(response, ct);
    }

    /// <summary>Sends <paramref name="count"/> bytes of an output file from <paramref name="offset"/>. Throws <see cref="StaleAttemptException"/> on 409.</summary>
    public async Task<UploadStatusDto> UploadChunkAsync(int hostId, Guid jobId, int attempt, string path, string sha256, long size, long offset, ReadOnlyMemory<byte> chunk, CancellationToken ct)
    {
        using var content = new ReadOnlyMemoryContent(chunk);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await _http.PutAsync(OutputUrl(hostId, jobId, path, attempt, sha256, size) + $"&offset={offset}", content, ct);
        return await UploadAnswerAsync(response, ct);
    }

    private static async Task<UploadStatusDto> UploadAnswerAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.Forbidden or HttpStatusCode.NotFound)
            throw new StaleAttemptException(await response.Content.ReadAsStringAsync(ct));
        // Refused as sent (a path the API does not take, bytes that do not match their hash): no retry changes that.
        if (response.StatusCode is HttpStatusCode.UnprocessableEntity or HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.BadRequest)
            throw new InvalidDataException($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        await EnsureAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<UploadStatusDto>(WireJson.Options, ct))!;
    }

    private static bool IsRefusal(HttpStatusCode status) => status is HttpStatusCode.Conflict or HttpStatusCode.NotFound or HttpStatusCode.Forbidden;

    private static async Task EnsureAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var body = await response.Content.ReadAsStringAsync(ct);
        throw new HttpRequestException($"{(int)response.StatusCode} {response.ReasonPhrase}: {body}", null, response.StatusCode);
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>The API refused an upload for good: this attempt is no longer the job's current one on this host.</summary>
public sealed class StaleAttemptException(string message) : Exception(message);
