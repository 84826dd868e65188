using System.Net;
using System.Net.Http.Json;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

public sealed class AuthTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    [Fact]
    public async Task Request_WithoutKey_Is401ProblemDetails()
    {
        var response = await factory.Client(null).GetAsync("/v1/jobs");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Request_WithUnknownKey_Is401()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await factory.Client("lsk_not_a_key").GetAsync("/v1/jobs")).StatusCode);
    }

    [Fact]
    public async Task CreateKey_ByAdmin_ReturnsAWorkingKeyOnce()
    {
        var response = await factory.Admin().PostAsJsonAsync("/v1/keys", new CreateKeyRequest("acme", null, "ci"), WireJson.Options);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = (await response.Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!;
        Assert.StartsWith("lsk_", created.Key);
        var me = await factory.Client(created.Key).GetFromJsonAsync<LongSeqService.Api.Keys.KeyEndpoints.WhoAmI>("/v1/me", WireJson.Options);
        Assert.Equal(("acme", "tenant"), (me!.Tenant, me.Role));
        var listed = await factory.Admin().GetStringAsync("/v1/keys");
        Assert.DoesNotContain(created.Key, listed); // only the hash is stored
        Assert.Contains(created.Key[..10], listed);
    }

    [Fact]
    public async Task CreateKey_ByTenant_Is403()
    {
        var (tenant, _) = await factory.TenantAsync();
        var response = await tenant.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("other", null, null), WireJson.Options);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task CreateKey_WithUnknownRole_Is422NamingTheField()
    {
        var response = await factory.Admin().PostAsJsonAsync("/v1/keys", new CreateKeyRequest("acme", "root", null), WireJson.Options);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("\"role\"", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RevokedKey_StopsWorking()
    {
        var created = (await (await factory.Admin().PostAsJsonAsync("/v1/keys", new CreateKeyRequest("revoked", null, null), WireJson.Options))
            .Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!;
        var client = factory.Client(created.Key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await factory.Admin().DeleteAsync($"/v1/keys/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/jobs")).StatusCode);
    }

    [Fact]
    public async Task HostEndpoints_RefuseTenantKeys()
    {
        var (tenant, _) = await factory.TenantAsync();
        var response = await tenant.PostAsJsonAsync("/v1/hosts/register", new { name = "x", slots = new[] { new { device = "cpu" } } });
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task HostKey_CannotReadTenantData()
    {
        Assert.Equal(HttpStatusCode.Forbidden, (await factory.Client(ServiceFactory.HostKey).GetAsync("/v1/jobs")).StatusCode);
    }

    [Fact]
    public async Task HangfireDashboard_IsAdminOnly()
    {
        var (tenant, _) = await factory.TenantAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await factory.Client(null).GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await tenant.GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await factory.Admin().GetAsync("/hangfire")).StatusCode);
    }
}
