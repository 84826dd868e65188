using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>Uploads are limited to 1 MiB here, so dpo_en_demo.json (1.5 MB) is over the limit.</summary>
public sealed class SmallUploadFactory : ServiceFactory
{
    protected override long MaxUploadBytes => 1 << 20;
}

public sealed class DatasetEndpointTests(SmallUploadFactory factory) : IClassFixture<SmallUploadFactory>
{
    [Fact]
    public async Task Upload_ValidFile_Is201WithFormatAndRows()
    {
        var (client, _) = await factory.TenantAsync();
        var response = await client.PostAsync("/v1/datasets", Forms.File(Data.File("identity.json")));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var dataset = (await response.Content.ReadFromJsonAsync<DatasetDto>(WireJson.Options))!;
        Assert.Equal(("alpaca", false, 91), (dataset.Format, dataset.IsPreference, dataset.Rows));
        Assert.Equal(new FileInfo(Data.File("identity.json")).Length, dataset.SizeBytes);
        var stored = Path.Combine(factory.DataDir, "datasets", dataset.Sha256[..2], dataset.Sha256 + ".json");
        Assert.Equal(File.ReadAllBytes(Data.File("identity.json")), File.ReadAllBytes(stored));
    }

    [Fact]
    public async Task Get_WithModel_GivesTokenLengthsUnderItsTokenizerAndCountsWhatACutoffTruncates()
    {
        var (client, _) = await factory.TenantAsync();
        var created = await (await client.PostAsync("/v1/datasets", Forms.File(Data.File("identity.json")))).Content.ReadFromJsonAsync<DatasetDto>(WireJson.Options);
        var stats = (await client.GetFromJsonAsync<DatasetDto>($"/v1/datasets/{created!.Id}?model=builtin:tiny-llama&cutoff_len=4096", WireJson.Options))!.TokenStats!;
        Assert.Equal("builtin:tiny-llama", stats.Model);
        Assert.Equal(0, stats.OverCutoff);
        // Byte-level BPE never makes more tokens than UTF-8 bytes, and the llama3 template adds its headers:
        // every example is longer in tokens than its answer alone and shorter than its bytes plus the template.
        Assert.True(stats.Lengths.Min > 10 && stats.Lengths.Max < 1024, $"{stats.Lengths}");
        var atMedian = (await client.GetFromJsonAsync<DatasetDto>($"/v1/datasets/{created.Id}?model=builtin:tiny-llama&cutoff_len={stats.Lengths.P50}", WireJson.Options))!.TokenStats!;
        Assert.InRange(atMedian.OverCutoff, 1, 91 / 2 + 1);                     // about half the examples are longer than the median
        var bad = await client.GetAsync($"/v1/datasets/{created.Id}?model=builtin:tiny-gpt");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
        Assert.Contains("model", await bad.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Upload_SameBytesTwice_ReturnsTheSameDataset()
    {
        var (client, _) = await factory.TenantAsync();
        var first = await ServiceFactory.UploadAsync(client, Data.File("glaive_toolcall_en_demo.json"));
        var again = await client.PostAsync("/v1/datasets", Forms.File(Data.File("glaive_toolcall_en_demo.json")));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(first.Id, (await again.Content.ReadFromJsonAsync<DatasetDto>(WireJson.Options))!.Id);
    }

    [Fact]
    public async Task Upload_MalformedFile_Is422NamingTheLinesAndStoresNothing()
    {
        var (client, _) = await factory.TenantAsync();
        var bytes = Encoding.UTF8.GetBytes("{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\"}\nnot json\n");
        var response = await client.PostAsync("/v1/datasets", Forms.Bytes(bytes, "bad.jsonl"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var lines = problem.RootElement.GetProperty("lines").EnumerateArray().Select(l => l.GetProperty("line").GetInt32()).ToList();
        Assert.Equal([2, 3], lines);
        Assert.Contains("line 2", problem.RootElement.GetProperty("errors").GetProperty("file")[0].GetString());
        var list = await client.GetFromJsonAsync<Page<DatasetDto>>("/v1/datasets", WireJson.Options);
        Assert.Empty(list!.Data);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(factory.DataDir, "tmp")));
    }

    [Fact]
    public async Task Upload_OverTheLimit_Is413()
    {
        var (client, _) = await factory.TenantAsync();
        var response = await client.PostAsync("/v1/datasets", Forms.File(Data.File("dpo_en_demo.json")));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Upload_NotMultipart_Is415()
    {
        var (client, _) = await factory.TenantAsync();
        var response = await client.PostAsync("/v1/datasets", new StringContent("[]", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task Upload_MultipartWithoutFile_Is400()
    {
        var (client, _) = await factory.TenantAsync();
        var form = new MultipartFormDataContent { { new StringContent("alpaca"), "formatting" } };
        var response = await client.PostAsync("/v1/datasets", form);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("no 'file' part", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Upload_WithFormattingThatDoesNotMatch_Is422()
    {
        var (client, _) = await factory.TenantAsync();
        var response = await client.PostAsync("/v1/datasets", Forms.File(Data.File("identity.json"), formatting: "sharegpt"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
    }

    [Fact]
    public async Task Get_OwnDataset_IsFoundAndOtherTenants_Is404()
    {
        var (alice, _) = await factory.TenantAsync();
        var (bob, _) = await factory.TenantAsync();
        var dataset = await ServiceFactory.UploadAsync(alice, Data.File("identity.json"));
        var got = await alice.GetFromJsonAsync<DatasetDto>($"/v1/datasets/{dataset.Id}?model=builtin:tiny-llama", WireJson.Options);
        Assert.Equal(dataset.Sha256, got!.Sha256);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/v1/datasets/{dataset.Id}")).StatusCode);
        Assert.DoesNotContain((await bob.GetFromJsonAsync<Page<DatasetDto>>("/v1/datasets", WireJson.Options))!.Data, d => d.Id == dataset.Id);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await alice.GetAsync($"/v1/datasets/{dataset.Id}?model=builtin:nope")).StatusCode);
    }
}
