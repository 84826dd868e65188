using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>The wire of the OpenAI surface: files are datasets, fine-tuning jobs are jobs, and every error is
/// OpenAI's <c>{"error": {message, type, param, code}}</c> naming the parameter (or line) at fault.</summary>
public sealed class OpenAiSurfaceTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    public const string Chat = """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}""";
    public const string Preference = """{"input": {"messages": [{"role": "user", "content": "2+2?"}]}, "preferred_output": [{"role": "assistant", "content": "4"}], "non_preferred_output": [{"role": "assistant", "content": "5"}]}""";

    public static MultipartFormDataContent FileForm(string text, string? purpose = "fine-tune", string name = "train.jsonl")
    {
        var form = new MultipartFormDataContent { { new ByteArrayContent(Encoding.UTF8.GetBytes(text)), "file", name } };
        if (purpose != null) form.Add(new StringContent(purpose), "purpose");
        return form;
    }

    private static async Task<JsonObject> ErrorOf(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{response.StatusCode}: {body}");
        var error = JsonNode.Parse(body)!["error"] as JsonObject;
        Assert.NotNull(error);
        Assert.Equal(["message", "type", "param", "code"], error.Select(kv => kv.Key));
        return error;
    }

    [Fact]
    public async Task Upload_PreferenceFile_IsADatasetAndDownloadsAsSent()
    {
        var (client, _) = await factory.TenantAsync();
        var text = string.Join("\n", Enumerable.Repeat(Preference, 3)) + "\n";
        var file = (await client.PostAsync("/v1/files", FileForm(text, name: "pref.jsonl"))).Content.ReadFromJsonAsync<JsonObject>();
        var f = (await file)!;
        Assert.Equal(("file", "fine-tune", "processed", "pref.jsonl"), (f["object"]!.GetValue<string>(), f["purpose"]!.GetValue<string>(), f["status"]!.GetValue<string>(), f["filename"]!.GetValue<string>()));
        Assert.Equal(Encoding.UTF8.GetByteCount(text), f["bytes"]!.GetValue<long>());
        var id = f["id"]!.GetValue<string>();

        var dataset = await client.GetFromJsonAsync<DatasetDto>($"/v1/datasets/{id}", WireJson.Options);   // one store: the same row
        Assert.Equal((DatasetFormats.ShareGpt, true, 3), (dataset!.Format, dataset.IsPreference, dataset.Rows));
        Assert.Equal(text, await client.GetStringAsync($"/v1/files/{id}/content"));
        var list = (await client.GetFromJsonAsync<JsonObject>("/v1/files?purpose=fine-tune"))!;
        Assert.Equal(("list", false), (list["object"]!.GetValue<string>(), list["has_more"]!.GetValue<bool>()));
        Assert.Equal([id], list["data"]!.AsArray().Select(x => x!["id"]!.GetValue<string>()));

        var deleted = (await (await client.DeleteAsync($"/v1/files/{id}")).Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.True(deleted["deleted"]!.GetValue<bool>());
        var gone = await ErrorOf(await client.GetAsync($"/v1/files/{id}"), HttpStatusCode.NotFound);
        Assert.Equal("not_found", gone["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/datasets/{id}")).StatusCode);
    }

    [Fact]
    public async Task Upload_BadFile_NamesTheLineAndStoresNothing()
    {
        var (client, _) = await factory.TenantAsync();
        var bad = await ErrorOf(await client.PostAsync("/v1/files", FileForm($"{Chat}\n{Chat}\n{{\"messages\": [{{\"role\": \"robot\", \"content\": \"x\"}}]}}\n")), HttpStatusCode.BadRequest);
        Assert.Equal(("file", "invalid_file_format"), (bad["param"]!.GetValue<string>(), bad["code"]!.GetValue<string>()));
        Assert.Contains("line 3", bad["message"]!.GetValue<string>());
        Assert.Contains("robot", bad["message"]!.GetValue<string>());

        var purpose = await ErrorOf(await client.PostAsync("/v1/files", FileForm(Chat, purpose: "assistants")), HttpStatusCode.BadRequest);
        Assert.Equal("purpose", purpose["param"]!.GetValue<string>());
        var none = await ErrorOf(await client.PostAsync("/v1/files", FileForm(Chat, purpose: null)), HttpStatusCode.BadRequest);
        Assert.Equal("purpose", none["param"]!.GetValue<string>());
        Assert.Empty((await client.GetFromJsonAsync<JsonObject>("/v1/datasets"))!["data"]!.AsArray());
    }

    [Fact]
    public async Task Errors_UnknownKeyNativeRuleAuthAndMissing_AreOpenAiErrorsNamingTheParam()
    {
        await factory.RegisterHostAsync("openai-surface-host", 2);
        var (client, _) = await factory.TenantAsync();
        var id = (await (await client.PostAsync("/v1/files", FileForm(Chat))).Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
        async Task<JsonObject> Create(object body) => await ErrorOf(await client.PostAsJsonAsync("/v1/fine_tuning/jobs", body), HttpStatusCode.BadRequest);

        var unknown = await Create(new { model = "builtin:tiny-llama", training_file = id, learning_rate = 0.1 });
        Assert.Equal("learning_rate", unknown["param"]!.GetValue<string>());
        // A rule of the native spec, named by the key the client sent.
        var sp = await Create(new { model = "builtin:tiny-llama", training_file = id, longseq = new { sequence_parallel_size = 3 } });
        Assert.Equal("longseq.sequence_parallel_size", sp["param"]!.GetValue<string>());
        var dpo = await Create(new { model = "builtin:tiny-llama", training_file = id, method = new { type = "dpo" } });
        Assert.Equal("training_file", dpo["param"]!.GetValue<string>());
        Assert.Contains("preference", dpo["message"]!.GetValue<string>());
        var epochs = await Create(new { model = "builtin:tiny-llama", training_file = id, method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = "many" } } } });
        Assert.Equal("method.supervised.hyperparameters.n_epochs", epochs["param"]!.GetValue<string>());
        var twice = await Create(new { model = "builtin:tiny-llama", training_file = id, seed = 1, longseq = new { seed = 2 } });
        Assert.Equal("longseq.seed", twice["param"]!.GetValue<string>());
        var model = await Create(new { model = "/etc/passwd", training_file = id });
        Assert.Equal("model", model["param"]!.GetValue<string>());

        var missing = await ErrorOf(await client.GetAsync($"/v1/fine_tuning/jobs/{Guid.NewGuid()}"), HttpStatusCode.NotFound);
        Assert.Equal("not_found", missing["code"]!.GetValue<string>());
        var anonymous = await ErrorOf(await factory.Client(null).GetAsync("/v1/fine_tuning/jobs"), HttpStatusCode.Unauthorized);
        Assert.Equal(("authentication_error", "invalid_api_key"), (anonymous["type"]!.GetValue<string>(), anonymous["code"]!.GetValue<string>()));
        var limit = await ErrorOf(await client.GetAsync("/v1/fine_tuning/jobs?limit=0"), HttpStatusCode.BadRequest);
        Assert.Equal("limit", limit["param"]!.GetValue<string>());
        // The native surface keeps its problem details.
        Assert.Equal("application/problem+json", (await client.GetAsync($"/v1/jobs/{Guid.NewGuid()}/events")).Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Create_MapsOntoTheNativeSpec_AndTheJobIsTheNativeJob()
    {
        await factory.RegisterHostAsync("openai-surface-host", 2);
        var (client, _) = await factory.TenantAsync();
        var id = (await (await client.PostAsync("/v1/files", FileForm(string.Join("\n", Enumerable.Repeat(Preference, 2))))).Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
        var response = await client.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "builtin:tiny-qwen2", training_file = id, seed = 5, suffix = "mine", metadata = new Dictionary<string, string> { ["team"] = "infra" },
            method = new { type = "dpo", dpo = new { hyperparameters = new { n_epochs = 2, batch_size = 1, learning_rate_multiplier = 2.0, beta = 0.2 } } },
            longseq = new { sequence_parallel_size = 2, cutoff_len = 512, finetuning_type = "lora" },
        });
        var job = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.True(response.IsSuccessStatusCode, job.ToJsonString());
        Assert.Equal(("fine_tuning.job", "queued", "mine"), (job["object"]!.GetValue<string>(), job["status"]!.GetValue<string>(), job["user_provided_suffix"]!.GetValue<string>()));
        Assert.Equal("dpo", job["method"]!["type"]!.GetValue<string>());
        Assert.Equal(0.2, job["method"]!["dpo"]!["hyperparameters"]!["beta"]!.GetValue<double>());
        Assert.Equal(2.0, job["hyperparameters"]!["learning_rate_multiplier"]!.GetValue<double>(), 12);
        Assert.Equal("infra", job["metadata"]!["team"]!.GetValue<string>());
        Assert.True(job["created_at"]!.GetValue<long>() > 1_700_000_000);

        var native = await client.GetFromJsonAsync<JobDto>($"/v1/jobs/{job["id"]!.GetValue<string>()}", WireJson.Options);
        Assert.Equal((Stage.Dpo, 2, 512, FinetuningType.Lora, 5, 2.0, 0.2), (native!.Spec.Stage, native.Spec.SequenceParallelSize, native.Spec.CutoffLen,
            native.Spec.FinetuningType, native.Spec.Seed, native.Spec.NumTrainEpochs, native.Spec.PrefBeta));
        Assert.Equal(2 * new JobSpec().LearningRate, native.Spec.LearningRate, 15);
        var listed = (await client.GetFromJsonAsync<JsonObject>("/v1/fine_tuning/jobs"))!;
        Assert.Equal([native.Id.ToString()], listed["data"]!.AsArray().Select(j => j!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task OpenApiDocument_ListsTheOpenAiSurfaceAndPauseResume()
    {
        var openai = (await factory.Client(null).GetFromJsonAsync<JsonObject>("/openapi/openai.json"))!["paths"]!.AsObject();
        foreach (var path in new[] { "/v1/files", "/v1/files/{id}/content", "/v1/fine_tuning/jobs", "/v1/fine_tuning/jobs/{id}/pause",
                     "/v1/fine_tuning/jobs/{id}/resume", "/v1/fine_tuning/jobs/{id}/events", "/v1/fine_tuning/jobs/{id}/checkpoints" })
            Assert.True(openai.ContainsKey(path), $"{path} is not in the OpenAI surface's OpenAPI document");
        var native = (await factory.Client(null).GetFromJsonAsync<JsonObject>("/openapi/v1.json"))!["paths"]!.AsObject();
        foreach (var path in new[] { "/v1/jobs/{id}/pause", "/v1/jobs/{id}/resume" })
            Assert.True(native.ContainsKey(path), $"{path} is not in the tenant OpenAPI document");
        Assert.DoesNotContain(native, p => p.Key.StartsWith("/v1/fine_tuning", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sdk_RefusedRequest_IsAClientResultExceptionCarryingOurMessage()
    {
        await factory.RegisterHostAsync("openai-surface-host", 2);
        var (_, key) = await factory.TenantAsync();
        var openai = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential(key), new OpenAI.OpenAIClientOptions
        {
            Endpoint = new Uri(factory.Server.BaseAddress, "v1"),
            Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(factory.CreateClient()),
        });
#pragma warning disable OPENAI001 // the SDK's fine-tuning client is marked experimental
        var e = await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(() =>
            openai.GetFineTuningClient().FineTuneAsync("builtin:tiny-llama", "ds-0000000000000000", waitUntilCompleted: false));
#pragma warning restore OPENAI001
        Assert.Equal(400, e.Status);
        Assert.Contains("no dataset 'ds-0000000000000000'", e.Message);
        Assert.Contains("training_file", e.Message);
    }
}
