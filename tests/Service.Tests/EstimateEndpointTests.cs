using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Memory;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>
/// The memory model at submission, on the real PostgreSQL: one host whose 4 slots hold less than one rank of
/// the spec at sequence_parallel_size 1 but more than one rank at 2 (the budget is set from the model itself,
/// so the test follows the model, not copied numbers). A spec that fits no slot is 422 with the numbers;
/// <c>auto</c> picks 2 and says so in the job's events; POST /v1/estimates gives the breakdown and that N.
/// </summary>
public sealed class EstimateEndpointTests(ServiceFactory factory) : IClassFixture<ServiceFactory>, IAsyncLifetime
{
    private const int CutoffLen = 16384;
    private static readonly ModelDims Model = ModelDims.Builtins["builtin:tiny-llama"];
    private static long PeakAt(int sp, int cutoff = CutoffLen) =>
        MemoryModel.Estimate(Model, new MemoryRequest { SeqLen = cutoff, SequenceParallelSize = sp }).PeakBytes;
    /// <summary>Between one rank's peak at SP 2 and at SP 1.</summary>
    private static readonly long Budget = (PeakAt(1) + PeakAt(2)) / 2;

    private HttpClient _client = null!;
    private DatasetDto _sft = null!;

    public async Task InitializeAsync()
    {
        await factory.RegisterHostAsync("memory-host", 4, Budget);
        (_client, _) = await factory.TenantAsync();
        _sft = await ServiceFactory.UploadAsync(_client, Data.File("identity.json"));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private Dictionary<string, object> Spec(object sp, int cutoff = CutoffLen) => new()
    {
        ["model_name_or_path"] = "builtin:tiny-llama", ["dataset"] = _sft.Id, ["sequence_parallel_size"] = sp, ["cutoff_len"] = cutoff, ["max_steps"] = 2,
    };

    [Fact]
    public async Task Submit_RankLargerThanAnySlot_Is422WithPredictionBudgetAndWhatFits()
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", Spec(1));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").GetProperty("sequence_parallel_size")[0].GetString()!;
        Assert.Contains($"{PeakAt(1):N0} B", message);                  // the predicted per-rank bytes
        Assert.Contains($"{Budget:N0} B", message);                     // the slot's budget
        Assert.Contains("sequence_parallel_size 2", message);           // what would fit
    }

    [Fact]
    public async Task Submit_Auto_PicksSmallestFittingSizeAndSaysSoInEvents()
    {
        var response = await _client.PostAsJsonAsync("/v1/jobs", Spec("auto"));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        Assert.Equal((2, 2), (job.SequenceParallelSize, job.Spec.SequenceParallelSize));
        var events = await _client.ListAsync<JobEventDto>($"/v1/jobs/{job.Id}/events");
        Assert.Contains(events!, e => e.Reason.Contains("sequence_parallel_size auto → 2"));
        await using var scope = factory.Scope();
        Assert.Equal(PeakAt(2), factory.Db(scope).Jobs.Single(j => j.Id == job.Id).RankMemoryBytes);   // placement's filter reads it
    }

    [Fact]
    public async Task Submit_AutoThatNothingHolds_Is422()
    {
        // A million tokens: no size up to the host's 4 slots fits.
        var response = await _client.PostAsJsonAsync("/v1/jobs", Spec("auto", cutoff: 1 << 20));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("no size up to 4 fits", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Estimate_Spec_GivesPeakBreakdownAndAutoSize()
    {
        var response = await _client.PostAsJsonAsync("/v1/estimates", new Dictionary<string, object> { ["model_name_or_path"] = "builtin:tiny-llama", ["cutoff_len"] = CutoffLen, ["sequence_parallel_size"] = 1 });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(PeakAt(1), body.GetProperty("peak_bytes").GetInt64());
        Assert.Equal(2, body.GetProperty("auto_sequence_parallel_size").GetInt32());
        Assert.False(body.GetProperty("fits").GetBoolean());
        Assert.True(body.GetProperty("resident").GetProperty("weights").GetProperty("bytes").GetInt64() > 0);
    }

    [Fact]
    public async Task Estimate_UnknownModel_Is422NamingTheField()
    {
        var response = await _client.PostAsJsonAsync("/v1/estimates", new Dictionary<string, object> { ["model_name_or_path"] = "shape:nope" });

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("unknown model shape", await response.Content.ReadAsStringAsync());
    }
}
