using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Hosts;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Runs;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace LongSeqService.Service.Tests;

/// <summary>
/// The OpenAPI documents as a contract: they equal the committed files (docs/openapi/, which the lint and the
/// generated client read), they say what generators need (operation ids, plain numbers, closed sets, problem
/// bodies, binary downloads), and every answer of every operation of both documents matches its own schema.
/// </summary>
public sealed class ContractTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    public static readonly string[] Documents = ["v1", "hosts"];

    private async Task<JsonObject> DocumentAsync(string name) => JsonNode.Parse(await factory.Client(null).GetStringAsync($"/openapi/{name}.json"))!.AsObject();

    public static string CommittedPath(string name) => Path.Combine(Data.Dir, "..", "docs", "openapi", $"{name}.json");

    [Fact]
    public async Task Documents_EqualTheCommittedFiles()
    {
        foreach (var name in Documents)
        {
            var served = (await DocumentAsync(name)).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
            if (Environment.GetEnvironmentVariable("LONGSEQ_UPDATE_OPENAPI") == "1") File.WriteAllText(CommittedPath(name), served);
            Assert.True(File.Exists(CommittedPath(name)) && File.ReadAllText(CommittedPath(name)) == served,
                $"docs/openapi/{name}.json differs from the served document; LONGSEQ_UPDATE_OPENAPI=1 dotnet test tests/Service.Tests --filter Documents_EqualTheCommittedFiles rewrites it");
        }
    }

    [Fact]
    public async Task Documents_SayWhatGeneratorsNeed()
    {
        var tenant = await DocumentAsync("v1");
        var hosts = await DocumentAsync("hosts");
        var ids = new HashSet<string>();
        foreach (var doc in new[] { tenant, hosts })
            foreach (var (path, item) in doc["paths"]!.AsObject())
                foreach (var (method, op) in item!.AsObject())
                {
                    var where = $"{method} {path}";
                    Assert.True(op!["operationId"]?.GetValue<string>() is { Length: > 0 } id && ids.Add(id), $"{where}: no operationId, or not unique");
                    Assert.True(op["responses"]!["400"] != null, $"{where}: no 400 (unknown query parameters)");
                    foreach (var (status, response) in op["responses"]!.AsObject())
                        if (int.Parse(status) >= 400 && !(path == "/health" && status == "503"))
                            Assert.True(response!["content"]?["application/problem+json"] != null, $"{where} {status}: no problem+json body");
                    Assert.False(path.Length > 1 && path.EndsWith('/'), $"{where}: trailing slash");
                }
        // Host-only operations live in their own document.
        Assert.DoesNotContain(tenant["paths"]!.AsObject(), p => p.Key.Contains("/register") || p.Key.Contains("/heartbeat") || p.Key.Contains("/runs/"));
        Assert.NotNull(hosts["paths"]!["/v1/hosts/register"]);
        Assert.Null(hosts["paths"]!["/v1/jobs"]);
        // /health asks for no key.
        Assert.Empty(tenant["paths"]!["/health"]!["get"]!["security"]!.AsArray());
        // Numbers are numbers: no number-or-string, no NaN literals anywhere.
        var text = tenant.ToJsonString() + hosts.ToJsonString();
        Assert.DoesNotContain("NaN", text);
        Assert.DoesNotContain("^-?(?:0|[1-9]\\\\d*)", text);
        var schemas = tenant["components"]!["schemas"]!;
        var job = schemas["JobDto"]!["properties"]!;
        Assert.Equal("""["number","null"]""", Types(job["loss"]!));
        Assert.Equal("""["integer"]""", Types(job["world_size"]!));
        Assert.Equal(JobStates.All, job["state"]!["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal(WireNames.Names(typeof(Stage)), job["stage"]!["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Contains(null, schemas["JobEventDto"]!["properties"]!["from_state"]!["enum"]!.AsArray());
        // Binary downloads are typed.
        Assert.Equal("binary", tenant["paths"]!["/v1/jobs/{id}/artifacts/{path}"]!["get"]!["responses"]!["200"]!["content"]!["application/octet-stream"]!["schema"]!["format"]!.GetValue<string>());
        // The hub's messages are published, the step's own time among the metric's fields.
        Assert.NotNull(schemas["JobStateMessage"]);
        Assert.NotNull(schemas["MetricDto"]!["properties"]!["at"]);
        Assert.NotNull(schemas["TrainerLogRecord"]!["properties"]!["logged_at"]);
        // Every field of every schema is documented (a field that is only a $ref is documented by the schema it names).
        foreach (var doc in new[] { tenant, hosts })
            foreach (var (name, schema) in doc["components"]!["schemas"]!.AsObject())
                foreach (var (property, p) in schema!["properties"]?.AsObject() ?? [])
                    Assert.True(Described(p!), $"{name}.{property} has no description");
    }

    private static bool Described(JsonNode p) => p["description"]?.GetValue<string>() is { Length: > 0 } || p["$ref"] != null
        || (p["oneOf"] ?? p["anyOf"]) is JsonArray options && options.Any(o => o!["description"] != null || o["$ref"] != null);

    private static string Types(JsonNode schema) => schema["type"] is JsonArray a ? new JsonArray([.. a.Select(t => t!.DeepClone()).OrderBy(t => t!.GetValue<string>() == "null")]).ToJsonString()
        : new JsonArray(schema["type"]!.DeepClone()).ToJsonString();

    [Fact]
    public async Task UnknownQueryParameter_Is400NamingIt()
    {
        var (client, _) = await factory.TenantAsync();
        var response = await client.GetAsync("/v1/jobs?afterr=x");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.NotNull(problem["errors"]!["afterr"]);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/v1/models?afterStep=3")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync($"/v1/jobs/{Guid.NewGuid()}?id=1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/jobs?limit=5&state=queued")).StatusCode);
    }

    /// <summary>Every operation of both documents, each answer checked against its schema: 2xx, and the 4xx a client meets.</summary>
    [Fact]
    public async Task EveryOperation_AnswersMatchTheirSchemas()
    {
        var contract = new OpenApiContract(await DocumentAsync("v1"), await DocumentAsync("hosts"));
        HttpClient Client(string? key)
        {
            var c = new HttpClient(contract.Handler(factory.Server.CreateHandler())) { BaseAddress = factory.Server.BaseAddress };
            if (key != null) c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return c;
        }
        var anonymous = Client(null);
        var admin = Client(ServiceFactory.AdminKey);
        await anonymous.GetAsync("/health");
        await anonymous.GetAsync("/v1/jobs");

        // Keys and identity.
        var created = await (await admin.PostAsJsonAsync("/v1/keys", new CreateKeyRequest($"t-{Guid.NewGuid():N}", null, "walker"), WireJson.Options)).Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options);
        var tenant = Client(created!.Key);
        await admin.PostAsJsonAsync("/v1/keys", new { tenant = "x", role = "emperor" });
        await admin.ListAsync<KeyDto>("/v1/keys?limit=1");
        var spare = await (await admin.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("spare", null, null), WireJson.Options)).Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options);
        await admin.DeleteAsync($"/v1/keys/{spare!.Id}");
        await admin.DeleteAsync($"/v1/keys/{Guid.NewGuid()}");
        await tenant.GetAsync("/v1/me");
        await tenant.GetAsync("/v1/keys");

        // Datasets.
        var dataset = (await (await tenant.PostAsync("/v1/datasets", Forms.File(Data.File("identity.json")))).Content.ReadFromJsonAsync<DatasetDto>(WireJson.Options))!;
        await tenant.PostAsync("/v1/datasets", Forms.File(Data.File("identity.json")));
        await tenant.PostAsync("/v1/datasets", Forms.Bytes("[{\"nothing\": 1}]"u8.ToArray(), "bad.json"));
        await tenant.ListAsync<DatasetDto>("/v1/datasets?limit=1");
        await tenant.GetAsync($"/v1/datasets/{dataset.Id}");
        await tenant.GetAsync($"/v1/datasets/{dataset.Id}?model=builtin:tiny-llama&cutoff_len=64");
        await tenant.GetAsync($"/v1/datasets/{dataset.Id}?model=builtin:nothing");
        await tenant.GetAsync("/v1/datasets/ds-missing");

        // Models.
        await tenant.ListAsync<JsonElement>("/v1/models?limit=3");
        await tenant.GetAsync("/v1/models/builtin:tiny-llama");
        await tenant.GetAsync("/v1/models/builtin:nothing");
        var dir = ModelDirs.Write(Path.Combine(Directory.CreateTempSubdirectory("contract-model-").FullName, "m"));
        await admin.PostAsJsonAsync("/v1/models", new { name = "contract-model", path = dir, description = "walked" });
        await admin.PostAsJsonAsync("/v1/models", new { name = "Bad Name", path = "relative" });
        await admin.DeleteAsync("/v1/models/contract-model");
        await admin.DeleteAsync("/v1/models/contract-model");

        // Hosts.
        var hostName = $"walker-{Guid.NewGuid():N}";
        var host = Client(await factory.HostKeyFor(hostName));
        var registered = (await (await host.PostAsJsonAsync("/v1/hosts/register", new RegisterHostRequest(hostName, [new SlotSpec("cpu", null), new SlotSpec("cpu", null)]), WireJson.Options))
            .Content.ReadFromJsonAsync<RegisterHostResponse>(WireJson.Options))!;
        await host.PostAsJsonAsync("/v1/hosts/register", new { name = "", slots = Array.Empty<object>() });
        await tenant.ListAsync<HostDto>("/v1/hosts?limit=1");
        await tenant.GetAsync($"/v1/hosts/{registered.HostId}");
        await tenant.GetAsync("/v1/hosts/999999");

        // Estimates and jobs.
        await tenant.PostAsJsonAsync("/v1/estimates", new { model_name_or_path = "builtin:tiny-llama", cutoff_len = 256 });
        await tenant.PostAsJsonAsync("/v1/estimates", new { model_name_or_path = "builtin:tiny-llama", cutoff_len = -1 });
        await tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = dataset.Id, sequence_parallel_mode = "spiral" });
        await tenant.PostAsync("/v1/jobs", new StringContent("{\"a\":1,\"a\":2}", System.Text.Encoding.UTF8, "application/json"));
        var job = (await (await tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = dataset.Id, max_steps = 2 }))
            .Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        await tenant.ListAsync<JobDto>("/v1/jobs?limit=1");
        await tenant.GetAsync($"/v1/jobs/{job.Id}");
        await tenant.GetAsync($"/v1/jobs/{Guid.NewGuid()}");

        // The run, as a host reports it.
        await using (var scope = factory.Scope())
        {
            // Other tests' hosts set aside, so the job lands on this one.
            var db = factory.Db(scope);
            await db.Hosts.Where(h => h.Id != registered.HostId).ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Lost));
            await scope.ServiceProvider.GetRequiredService<PlacementPass>().RunAsync();
            await db.Hosts.ExecuteUpdateAsync(s => s.SetProperty(h => h.State, HostStates.Online));
        }
        var beat = (await (await host.PostAsJsonAsync($"/v1/hosts/{registered.HostId}/heartbeat", new HeartbeatRequest([]), WireJson.Options)).Content.ReadFromJsonAsync<HeartbeatResponse>(WireJson.Options))!;
        var run = Assert.Single(beat.Start);
        var runs = $"/v1/hosts/{registered.HostId}/runs/{job.Id}";
        await host.PostAsJsonAsync($"{runs}/start", new StartRunRequest(run.Attempt), WireJson.Options);
        await host.PostAsJsonAsync($"{runs}/start", new StartRunRequest(run.Attempt), WireJson.Options);
        var records = Enumerable.Range(1, 2).Select(s => new TrainerLogRecord { CurrentSteps = s, TotalSteps = 2, Loss = 2.5 / s, Lr = 1e-4, TokensPerSec = 12.5, LoggedAt = DateTimeOffset.UtcNow }).ToList();
        await host.PostAsJsonAsync($"{runs}/metrics", new RunMetricsRequest(run.Attempt, records), WireJson.Options);
        await host.PostAsJsonAsync($"{runs}/metrics", new RunMetricsRequest(run.Attempt + 5, records), WireJson.Options);
        var output = FinishedJobs.Output(factory, job.Id);
        ModelDirs.Write(Path.Combine(output, "checkpoint-1"));
        ModelDirs.Write(Path.Combine(output, "checkpoint-2"));
        await tenant.ListAsync<MetricDto>($"/v1/jobs/{job.Id}/metrics?limit=1");
        await tenant.ListAsync<CheckpointDto>($"/v1/jobs/{job.Id}/checkpoints?limit=1");
        await tenant.ListAsync<ArtifactDto>($"/v1/jobs/{job.Id}/artifacts?limit=2");
        await tenant.GetAsync($"/v1/jobs/{job.Id}/artifacts/checkpoint-1%2Fconfig.json");
        await tenant.GetAsync($"/v1/jobs/{job.Id}/artifacts/missing.bin");
        await tenant.GetAsync($"/v1/jobs/{job.Id}/download?path=checkpoint-2/config.json");
        await tenant.GetAsync($"/v1/jobs/{job.Id}/metrics?after=x");
        // A host with its own disk's artifact calls (any host may make them for its current run).
        var one = "x"u8.ToArray();
        var upload = $"{runs}/outputs/upload.bin?attempt={run.Attempt}&sha256={Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(one))}&size=1";
        await host.GetAsync($"{runs}/inputs/{new string('0', 64)}?attempt={run.Attempt}");
        await host.GetAsync(upload);
        await host.PutAsync(upload + "&offset=0", new ByteArrayContent(one) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } });
        await host.PutAsync($"{runs}/outputs/..%2Fup.bin?attempt={run.Attempt}&sha256={new string('0', 64)}&size=1&offset=0", new ByteArrayContent(one));
        await host.PostAsJsonAsync($"{runs}/finish", new FinishRunRequest(run.Attempt, RunOutcomes.Succeeded, 0, null), WireJson.Options);
        await host.PostAsJsonAsync($"{runs}/finish", new FinishRunRequest(run.Attempt, "exploded", 0, null), WireJson.Options);
        await tenant.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events?limit=2");
        await tenant.PostAsync($"/v1/jobs/{job.Id}/cancel", null);
        var second = (await (await tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = dataset.Id, max_steps = 2 }))
            .Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        await tenant.PostAsync($"/v1/jobs/{second.Id}/cancel", null);
        var third = (await (await tenant.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = dataset.Id, max_steps = 2 }))
            .Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        await tenant.PostAsync($"/v1/jobs/{third.Id}/pause", null);             // queued: paused at once
        await tenant.PostAsync($"/v1/jobs/{third.Id}/resume", null);
        await tenant.PostAsync($"/v1/jobs/{second.Id}/pause", null);            // cancelled: 409
        await tenant.GetAsync("/v1/jobs?unknown=1");

        Assert.True(contract.Failures.Count == 0, string.Join("\n", contract.Failures));
        Assert.Empty(contract.Operations.Except(contract.Seen));
    }

    [Fact]
    public async Task ArtifactDownload_AcceptsAnEncodedSlashAndAPathQuery()
    {
        var (client, _) = await factory.TenantAsync();
        var dataset = await ServiceFactory.UploadAsync(client, Data.File("identity.json"));
        await factory.RegisterHostAsync($"files-{Guid.NewGuid():N}", 1);
        var job = await FinishedJobs.SucceededAsync(factory, client, dataset, 6);
        var expected = File.ReadAllBytes(Path.Combine(FinishedJobs.Output(factory, job.Id), "checkpoint-6", "config.json"));
        Assert.Equal(expected, await client.GetByteArrayAsync($"/v1/jobs/{job.Id}/artifacts/checkpoint-6%2Fconfig.json"));
        Assert.Equal(expected, await client.GetByteArrayAsync($"/v1/jobs/{job.Id}/artifacts/checkpoint-6/config.json"));
        Assert.Equal(expected, await client.GetByteArrayAsync($"/v1/jobs/{job.Id}/download?path=checkpoint-6%2Fconfig.json"));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/jobs/{job.Id}/download?path=..%2F..%2Fsecret")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/jobs/{job.Id}/artifacts/..%2F..%2Fsecret")).StatusCode);
    }
}
