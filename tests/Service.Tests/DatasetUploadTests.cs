using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Service.Tests;

/// <summary>Uploads with bad names and bad bytes: each is a 4xx problem-details answer naming the field or
/// line, and leaves the store directory and the datasets table as they were.</summary>
public sealed class DatasetUploadTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    private static readonly byte[] Row = Encoding.UTF8.GetBytes("{\"instruction\": \"say hi\", \"output\": \"hi\"}\n");

    /// <summary>A multipart body written by hand, since HttpClient refuses some of these names itself.</summary>
    private static ByteArrayContent Raw(string fileName, byte[] content, string? formatting = null)
    {
        var body = new MemoryStream();
        void Write(string s) => body.Write(Encoding.UTF8.GetBytes(s));
        if (formatting != null) Write($"--b\r\nContent-Disposition: form-data; name=\"formatting\"\r\n\r\n{formatting}\r\n");
        Write($"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fileName}\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        body.Write(content);
        Write("\r\n--b--\r\n");
        var result = new ByteArrayContent(body.ToArray());
        result.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=b");
        return result;
    }

    private async Task<(string[] Files, int Rows)> StoreAsync()
    {
        var files = Directory.Exists(factory.DataDir) ? Directory.GetFiles(factory.DataDir, "*", SearchOption.AllDirectories)
            .Where(f => f.Contains("/datasets/") || f.Contains("/tmp/")).Order().ToArray() : [];
        await using var scope = factory.Scope();
        return (files, await factory.Db(scope).Datasets.CountAsync());
    }

    private async Task<JsonElement> RefusedAsync(HttpClient client, HttpContent content, string field)
    {
        var before = await StoreAsync();
        var response = await client.PostAsync("/v1/datasets", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.UnprocessableEntity, $"{response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement.Clone();
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), text);
        var after = await StoreAsync();
        Assert.Equal(before.Files, after.Files);
        Assert.Equal(before.Rows, after.Rows);
        return problem;
    }

    [Theory]
    [InlineData("a\u0000b.jsonl")]
    [InlineData("data.js\u0000onl")]
    [InlineData("tab\u0001.jsonl")]
    public async Task Upload_FileNameWithControlCharacters_Is422AndStoresNothing(string name)
    {
        var (client, _) = await factory.TenantAsync();
        await RefusedAsync(client, Raw(name, Row), "file");
    }

    [Fact]
    public async Task Upload_OversizeFileName_Is422AndStoresNothing()
    {
        var (client, _) = await factory.TenantAsync();
        await RefusedAsync(client, Raw(new string('n', 300) + ".jsonl", Row), "file");
        await RefusedAsync(client, Raw("ok.jsonl", Row, formatting: new string('x', 100_000)), "formatting");
    }

    [Fact]
    public async Task Upload_InvalidUtf8_Is422NamingTheLineAndStoresNothing()
    {
        var (client, _) = await factory.TenantAsync();
        byte[] latin1 = [.. Row, .. Row, .. "{\"instruction\": \"caf"u8, 0xE9, .. "\", \"output\": \"x\"}\n"u8];
        var problem = await RefusedAsync(client, Raw("latin1.jsonl", latin1), "file");
        Assert.Equal(3, problem.GetProperty("lines")[0].GetProperty("line").GetInt32());
        Assert.Contains("UTF-8", problem.GetProperty("errors").GetProperty("file")[0].GetString());
        byte[] cut = [.. Row, .. "{\"instruction\": \"\u20ac"u8[..^1]];              // a three-byte character cut at the end
        Assert.Equal(2, (await RefusedAsync(client, Raw("cut.jsonl", cut), "file")).GetProperty("lines")[0].GetProperty("line").GetInt32());
    }

    [Fact]
    public async Task Upload_ValidUtf8AcrossReadBuffers_IsAccepted()
    {
        var (client, _) = await factory.TenantAsync();
        var line = Encoding.UTF8.GetBytes("{\"instruction\": \"é€😀 " + new string('x', 97) + "\", \"output\": \"ok 😀\"}\n");
        var bytes = Enumerable.Repeat(line, 3000).SelectMany(b => b).ToArray();   // ~400 KB: multi-byte characters straddle every 80 KiB read
        var response = await client.PostAsync("/v1/datasets", Raw("unicode.jsonl", bytes));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }
}
