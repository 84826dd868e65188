using System.Net;
using System.Text.Json;

namespace LongSeqService.Service.Tests;

public sealed class DocsAndHealthTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    [Fact]
    public async Task OpenApi_ListsEveryEndpointWithBearerAuth()
    {
        using var doc = JsonDocument.Parse(await factory.Client(null).GetStringAsync("/openapi/v1.json"));
        var paths = doc.RootElement.GetProperty("paths");
        foreach (var path in new[] { "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/cancel", "/v1/jobs/{id}/events", "/v1/jobs/{id}/metrics",
                     "/v1/jobs/{id}/checkpoints", "/v1/jobs/{id}/artifacts", "/v1/jobs/{id}/artifacts/{path}", "/v1/datasets", "/v1/datasets/{id}",
                     "/v1/keys", "/v1/hosts", "/v1/models", "/health" })
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is missing from the OpenAPI document");
        // What only trainer hosts call is in their own document (/openapi/hosts.json; see ContractTests).
        Assert.False(paths.TryGetProperty("/v1/hosts/register", out _));
        var scheme = doc.RootElement.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer");
        Assert.Equal("bearer", scheme.GetProperty("scheme").GetString());
        var submit = paths.GetProperty("/v1/jobs").GetProperty("post").GetProperty("responses");
        foreach (var status in new[] { "200", "201", "401", "409", "422" }) Assert.True(submit.TryGetProperty(status, out _), $"POST /v1/jobs lacks {status}");
        var upload = paths.GetProperty("/v1/datasets").GetProperty("post");
        foreach (var status in new[] { "201", "400", "413", "422" }) Assert.True(upload.GetProperty("responses").TryGetProperty(status, out _), $"POST /v1/datasets lacks {status}");
        Assert.True(upload.GetProperty("requestBody").GetProperty("content").TryGetProperty("multipart/form-data", out _));
        Assert.True(paths.GetProperty("/v1/jobs/{id}/cancel").GetProperty("post").GetProperty("responses").TryGetProperty("409", out _));
        var schemas = doc.RootElement.GetProperty("components").GetProperty("schemas");
        Assert.True(schemas.GetProperty("JobSpec").GetProperty("properties").TryGetProperty("sequence_parallel_size", out _));
        Assert.True(schemas.GetProperty("JobDto").GetProperty("properties").TryGetProperty("estimated_finish", out _));
    }

    [Fact]
    public async Task SwaggerUi_IsServed()
    {
        var response = await factory.Client(null).GetAsync("/swagger/index.html");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("swagger", await response.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Health_WithoutSchedulerServer_Is503NamingTheScheduler()
    {
        // This factory runs no scheduler server: the database is fine, the scheduler is not.
        var response = await factory.Client(null).GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("ok", doc.RootElement.GetProperty("database").GetProperty("status").GetString());
        Assert.Equal("down", doc.RootElement.GetProperty("scheduler").GetProperty("status").GetString());
    }
}
