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

    private static bool IsRefusal(HttpStatusCode status) => status is HttpStatusCode.Conflict or HttpStatusCode.NotFound or HttpStatusCode.Forbidden;

    private static async Task EnsureAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var body = await response.Content.ReadAsStringAsync(ct);
        throw new HttpRequestException($"{(int)response.StatusCode} {response.ReasonPhrase}: {body}", null, response.StatusCode);
    }

    public void Dispose() => _http.Dispose();
}
