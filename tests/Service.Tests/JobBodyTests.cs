using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Service.Tests;

/// <summary>Issue 9, item 9: bad job bodies against the real service and PostgreSQL. Each is a 4xx problem
/// naming the field, never a 500, never an echo of a huge input, and no job row is stored.</summary>
public sealed class JobBodyTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private HttpClient _client = null!;
    private DatasetDto _sft = null!;

    public async Task InitializeAsync()
    {
        await factory.RegisterHostAsync("body-host", 2);
        (_client, _) = await factory.TenantAsync();
        _sft = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private string Valid(string extra = "") => $$"""{"model_name_or_path": "builtin:tiny-llama", "dataset": "{{_sft.Id}}", "max_steps": 2{{extra}}}""";

    private async Task<int> JobCountAsync()
    {
        await using var scope = factory.Scope();
        return await factory.Db(scope).Jobs.CountAsync();
    }

    /// <summary>Posts raw bytes; asserts the status, that nothing was stored, and returns the problem's errors.</summary>
    private async Task<JsonElement> RefusedAsync(byte[] body, HttpStatusCode status)
    {
        int before = await JobCountAsync();
        var response = await _client.PostAsync("/v1/jobs", new ByteArrayContent(body) { Headers = { ContentType = new("application/json") } });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{(int)response.StatusCode}: {text[..Math.Min(text.Length, 500)]}");
        Assert.True(text.Length < 8_000, $"the answer is {text.Length:N0} characters: input echoed?");
        Assert.Equal(before, await JobCountAsync());
        Assert.StartsWith("application/problem+json", response.Content.Headers.ContentType?.ToString());
        return JsonDocument.Parse(text).RootElement.GetProperty("errors").Clone();
    }

    private Task<JsonElement> RefusedAsync(string body, HttpStatusCode status = HttpStatusCode.UnprocessableEntity) => RefusedAsync(Encoding.UTF8.GetBytes(body), status);

    [Fact]
    public async Task Submit_ValidBody_IsStillAccepted()
    {
        var response = await _client.PostAsync("/v1/jobs", new StringContent(Valid(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Submit_NullForEveryNonNullableKey_Is422NamingEachKey()
    {
        var keys = JobSpecKeys.All.Where(k => !k.Nullable && !k.ServiceOwned).Select(k => k.Name).ToList();
        var body = $$"""{"model_name_or_path": "builtin:tiny-llama", "dataset": "{{_sft.Id}}"{{string.Concat(keys.Select(k => $", \"{k}\": null"))}}}""";
        var errors = await RefusedAsync(body);
        foreach (var k in keys) Assert.Contains("cannot be null", errors.GetProperty(k)[0].GetString());
    }

    [Fact]
    public async Task Submit_DuplicateKey_Is400NamingIt()
    {
        var errors = await RefusedAsync(Valid(", \"cutoff_len\": 128, \"cutoff_len\": 256"), HttpStatusCode.BadRequest);
        Assert.Contains("twice", errors.GetProperty("cutoff_len")[0].GetString());
    }

    [Fact]
    public async Task Submit_InvalidUtf8_Is400NamingTheField()
    {
        var body = Encoding.UTF8.GetBytes(Valid(", \"template\": \"qwen\\u0000\"")).ToList();
        int at = Encoding.UTF8.GetString([.. body]).IndexOf("qwen", StringComparison.Ordinal);
        body.InsertRange(at, new byte[] { 0xC3, 0x28, 0xFF }); // an invalid two-byte sequence and a byte UTF-8 never uses
        var errors = await RefusedAsync([.. body], HttpStatusCode.BadRequest);
        Assert.True(errors.TryGetProperty("template", out _) || errors.TryGetProperty("body", out _), errors.ToString());
    }

    [Fact]
    public async Task Submit_LongString_Is422AndNotEchoed()
    {
        var errors = await RefusedAsync(Valid($", \"template\": \"{new string('q', 300_000)}\""));
        Assert.Contains("longer than", errors.GetProperty("template")[0].GetString());
    }

    [Fact]
    public async Task Submit_HugeUnknownKey_Is4xxQuicklyAndNotEchoed()
    {
        // Under the body limit: refused by the parser without an edit-distance search over it.
        var errors = await RefusedAsync(Valid($", \"{new string('k', 900_000)}\": 1"));
        Assert.Contains(errors.EnumerateObject(), p => p.Name.Length < 100 && p.Value[0].GetString()!.Contains("unknown key"));
        // 20 MB (issue 9's case): over the body limit, refused before it is parsed.
        var big = await RefusedAsync(Valid($", \"{new string('k', 20_000_000)}\": 1"), HttpStatusCode.RequestEntityTooLarge);
        Assert.True(big.TryGetProperty("body", out _));
    }

    [Theory]
    [InlineData("learning_rate", "1e308")]
    [InlineData("val_size", "1e308")]
    [InlineData("num_train_epochs", "1e308")]
    [InlineData("rope_theta", "1e308")]
    [InlineData("lora_alpha", "-3")]
    [InlineData("priority", "1e308")]
    public async Task Submit_NumberOutOfRange_Is422NamingTheField(string key, string value)
    {
        var errors = await RefusedAsync(Valid($", \"{key}\": {value}"));
        Assert.True(errors.TryGetProperty(key, out _), errors.ToString());
    }

    [Fact]
    public async Task Submit_NotAnObject_Is400()
    {
        Assert.True((await RefusedAsync("[1, 2]", HttpStatusCode.BadRequest)).TryGetProperty("body", out _));
        Assert.True((await RefusedAsync("{\"stage\": ", HttpStatusCode.BadRequest)).TryGetProperty("stage", out _));
    }

    [Fact]
    public async Task OpenApi_JobSubmissionSchema_IsDerivedFromTheDeclaration()
    {
        using var doc = JsonDocument.Parse(await factory.Client(null).GetStringAsync("/openapi/v1.json"));
        var schema = doc.RootElement.GetProperty("components").GetProperty("schemas").GetProperty("JobSubmission");
        Assert.False(schema.GetProperty("additionalProperties").GetBoolean());
        var p = schema.GetProperty("properties");
        Assert.Equal("number", p.GetProperty("learning_rate").GetProperty("type").GetString());
        Assert.Equal("integer", p.GetProperty("cutoff_len").GetProperty("type").GetString());
        Assert.Equal(["sft", "dpo", "pt"], p.GetProperty("stage").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(1, p.GetProperty("learning_rate").GetProperty("maximum").GetDouble());
        Assert.False(p.TryGetProperty("output_dir", out _)); // set by the service
        foreach (var k in JobSpecKeys.All.Where(k => !k.ServiceOwned)) Assert.True(p.TryGetProperty(k.Name, out _), k.Name);
        var post = doc.RootElement.GetProperty("paths").EnumerateObject().First(x => x.Name.TrimEnd('/') == "/v1/jobs").Value.GetProperty("post");
        Assert.Equal("#/components/schemas/JobSubmission", post.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString());
    }
}
