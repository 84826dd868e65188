using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LongSeqService.EndToEnd.Tests.Browser;

/// <summary>
/// The dashboard in headless Chromium against the real system (API + scheduler + trainer host as
/// processes): sign in, upload, submit, watch the curve grow live over SignalR, reload for the whole
/// curve, download an artifact, cancel, and the refusals (wrong key, bad dataset, bad spec). Saves the
/// screenshots in docs/screenshots/.
/// </summary>
[Trait("Category", "Slow")]
public class DashboardTests(SystemUnderTest system, Chromium chromium) : IClassFixture<SystemUnderTest>, IClassFixture<Chromium>, IAsyncLifetime
{
    private static readonly string Screenshots = Path.Combine(SystemUnderTest.Root, "docs", "screenshots");
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(4);
    private IBrowserContext _context = null!;
    private IPage _page = null!;
    private readonly List<string> _pageErrors = [];

    public async Task InitializeAsync()
    {
        _context = await chromium.Browser.NewContextAsync(new()
        {
            BaseURL = system.BaseUrl.ToString(), ViewportSize = new() { Width = 1400, Height = 800 }, AcceptDownloads = true,
        });
        _context.SetDefaultTimeout(30_000);
        // Expect() waits 5 s by default; the live connection took longer than that on a loaded machine (CI beside benchmarks).
        Assertions.SetDefaultExpectTimeout(15_000);
        _page = await _context.NewPageAsync();
        _page.PageError += (_, e) => { lock (_pageErrors) _pageErrors.Add(e); };
        _page.Dialog += async (_, d) => await d.AcceptAsync();   // the cancel button asks first
        Directory.CreateDirectory(Screenshots);
    }

    public async Task DisposeAsync()
    {
        await _context.CloseAsync();
        lock (_pageErrors) Assert.True(_pageErrors.Count == 0, "script errors on the page:\n" + string.Join("\n", _pageErrors));
    }

    [Fact]
    public async Task SignIn_WrongKeyOrHostKey_IsRefusedWithAMessageAndNothingIsKept()
    {
        await _page.GotoAsync("/");
        await _page.FillAsync("#api-key", "lsk_not_a_real_key");
        await _page.ClickAsync("button[type=submit]");
        await Expect(_page.Locator("#sign-in-error")).ToBeVisibleAsync();
        await Expect(_page.Locator("#sign-in-error")).ToContainTextAsync("refused");
        await Expect(_page.Locator("#nav")).ToBeHiddenAsync();
        Assert.Null(await _page.EvaluateAsync<string?>("() => sessionStorage.getItem('longseq.key')"));
        await Screenshot("sign-in-refused.png");

        await _page.FillAsync("#api-key", system.HostKey);
        await _page.ClickAsync("button[type=submit]");
        await Expect(_page.Locator("#sign-in-error")).ToContainTextAsync("trainer host");
        Assert.Null(await _page.EvaluateAsync<string?>("() => sessionStorage.getItem('longseq.key')"));

        var key = await TenantKey();
        await SignIn(key);
        Assert.Equal(key, await _page.EvaluateAsync<string?>("() => sessionStorage.getItem('longseq.key')"));
        Assert.DoesNotContain(key, _page.Url);
    }

    [Fact]
    public async Task NewJob_UploadSubmitFollow_CurveGrowsLiveSucceedsReloadShowsWholeCurveAndDownloads()
    {
        const int steps = 40;
        var key = await TenantKey();
        await SignIn(key);
        await _page.ClickAsync("#nav a[data-nav=new]");
        await _page.SetInputFilesAsync("#dataset-file", Path.Combine(SystemUnderTest.Root, "data", "identity.json"));
        await _page.ClickAsync("#upload-dataset");
        var rows = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(SystemUnderTest.Root, "data", "identity.json")))!.AsArray().Count;
        await Expect(_page.Locator("#dataset-result .ok-box")).ToContainTextAsync($"alpaca, {rows} rows");
        await _page.FillAsync("#f-sequence_parallel_size", "2");
        await Expect(_page.Locator("#estimate-peak")).ToContainTextAsync("Predicted per rank");      // the memory model, as the spec is edited
        await _page.FillAsync("#f-max_steps", steps.ToString());
        await _page.FillAsync("#f-logging_steps", "1");
        await _page.FillAsync("#f-save_steps", "10");
        await Screenshot("new-job.png");

        // A sampler in the page records (state, points) every 50 ms, so "the curve grew while the job ran"
        // is judged from what the page showed, not from a lucky moment. Set after landing: a reload drops it.
        await _page.ClickAsync("#submit-job");
        await _page.WaitForURLAsync(new Regex(@"#/jobs/[0-9a-f-]{36}$"));
        var jobId = Guid.Parse(_page.Url[^36..]);
        await _page.EvaluateAsync(@"() => { window.samples = []; setInterval(() => window.samples.push([
            document.querySelector('#job-state')?.textContent, Number(document.querySelector('[data-chart=loss]')?.dataset.points ?? 0)]), 50); }");

        await Expect(_page.Locator("#job-state")).ToHaveTextAsync("succeeded", new() { Timeout = (float)JobTimeout.TotalMilliseconds });
        var samples = (await _page.EvaluateAsync<JsonElement>("() => window.samples")).EnumerateArray()
            .Select(s => (State: s[0].GetString(), Points: s[1].GetInt32())).ToList();
        var whileRunning = samples.Where(s => s.State == "running" && s.Points > 0).Select(s => s.Points).Distinct().ToList();
        Assert.True(whileRunning.Count >= 3 && whileRunning.Min() < steps,
            $"the curve should gain points while the job runs; saw {string.Join(",", whileRunning)} while running");
        await Expect(_page.Locator("[data-chart=loss]")).ToHaveAttributeAsync("data-points", steps.ToString());
        await Expect(_page.Locator("#artifacts [data-path='model.safetensors']")).ToBeVisibleAsync();
        await Expect(_page.Locator("[data-chart=rewards]")).ToBeHiddenAsync();            // SFT: no DPO rewards
        await Expect(_page.Locator("#memory [data-rank]")).ToHaveCountAsync(2);              // one bar per SP rank
        await Screenshot("job.png");

        // Reload: the history comes from /metrics, the whole curve at once.
        await _page.ReloadAsync();
        await Expect(_page.Locator(".charts[data-loaded=true]")).ToBeAttachedAsync();
        Assert.False(await _page.EvaluateAsync<bool>("() => 'samples' in window"), "the page was reloaded");
        using var api = system.Client(key);
        var metrics = (await api.ListAsync<MetricDto>($"/v1/jobs/{jobId}/metrics"))!;
        Assert.Equal(steps, metrics.Count);
        await Expect(_page.Locator("[data-chart=loss]")).ToHaveAttributeAsync("data-points", steps.ToString());
        await Expect(_page.Locator("[data-chart=loss]")).ToHaveAttributeAsync("data-last-step", steps.ToString());
        await Expect(_page.Locator("#job-state")).ToHaveTextAsync("succeeded");
        await Expect(_page.Locator("#checkpoints")).ToContainTextAsync("checkpoint-10");

        // Downloads go through fetch with the key (a blob), and bring the very bytes the API serves.
        var download = await _page.RunAndWaitForDownloadAsync(() => _page.ClickAsync("#artifacts [data-path='config.json']"));
        Assert.Equal("config.json", download.SuggestedFilename);
        var saved = await download.PathAsync();
        Assert.Equal(await api.GetByteArrayAsync($"/v1/jobs/{jobId}/artifacts/config.json"), await File.ReadAllBytesAsync(saved));
    }

    [Fact]
    public async Task RunningJob_ListUpdatesLiveAndCancelButton_CancelsIt()
    {
        var key = await TenantKey();
        using var api = system.Client(key);
        var dataset = await SystemUnderTest.UploadDatasetIdAsync(api, "identity.json");
        var job = await Submit(api, new()
        {
            ["model_name_or_path"] = "builtin:tiny-llama", ["dataset"] = dataset, ["max_steps"] = 400, ["logging_steps"] = 1,
            ["learning_rate"] = 1e-3, ["sequence_parallel_size"] = 2,
        });
        await SignIn(key);
        var row = _page.Locator($"tr[data-job-id='{job}']");
        await Expect(row.Locator(".badge")).ToHaveTextAsync("running", new() { Timeout = (float)JobTimeout.TotalMilliseconds });
        // The row's progress moves with the hub's messages; the list is not reloaded for that.
        await Expect(row.Locator(".progress-label")).ToHaveTextAsync(new Regex(@"^[1-9]\d* / 400$"), new() { Timeout = (float)JobTimeout.TotalMilliseconds });
        var first = await row.Locator(".progress-label").TextContentAsync();
        await Expect(row.Locator(".progress-label")).Not.ToHaveTextAsync(first!);
        await Screenshot("jobs.png");

        await _page.ClickAsync("#nav a[data-nav=hosts]");
        await Expect(_page.Locator($"#hosts a[href='#/jobs/{job}']")).ToHaveCountAsync(2);   // SP=2 holds two slots
        await Screenshot("hosts.png");
        // A host a world across hosts lost is held from spanning worlds: the page says until when and why (polled every 5 s).
        await system.ExecuteSqlAsync("UPDATE hosts SET held_until = now() + interval '10 minutes', held_reason = 'job j attempt 1 on host 2: host lost'");
        await Expect(_page.Locator("#hosts .host-held")).ToContainTextAsync("Held from spanning worlds until");
        await Expect(_page.Locator("#hosts .host-held")).ToContainTextAsync("host lost");
        await system.ExecuteSqlAsync("UPDATE hosts SET held_until = NULL, held_reason = NULL");
        await Expect(_page.Locator("#hosts .host-held")).ToHaveCountAsync(0);

        await _page.GotoAsync($"/#/jobs/{job}");
        await _page.WaitForFunctionAsync("() => Number(document.querySelector('[data-chart=loss]').dataset.points) >= 2");
        await Expect(_page.Locator("#memory [data-rank]")).ToHaveCountAsync(2);              // one bar per SP rank
        await _page.ClickAsync("#cancel-job");
        await Expect(_page.Locator("#job-state")).ToHaveTextAsync("cancelled", new() { Timeout = 60_000 });
        var final = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
        Assert.Equal("cancelled", final.State);
        Assert.True(final.CurrentStep < 400, $"cancelled at step {final.CurrentStep}");
        await Expect(_page.Locator("#events")).ToContainTextAsync("cancelled by");
        await Expect(_page.Locator("#cancel-job")).ToHaveCountAsync(0);

        // The list's state filter.
        await _page.ClickAsync("#nav a[data-nav=jobs]");
        await _page.SelectOptionAsync("#state-filter", "cancelled");
        await Expect(_page.Locator($"tr[data-job-id='{job}']")).ToBeVisibleAsync();
        await Expect(_page.Locator("#jobs-table tbody tr[data-state]:not([data-state=cancelled])")).ToHaveCountAsync(0);
        await _page.SelectOptionAsync("#state-filter", "succeeded");
        await Expect(_page.Locator($"tr[data-job-id='{job}']")).ToHaveCountAsync(0);
        await _page.SelectOptionAsync("#state-filter", "");
    }

    [Fact]
    public async Task DpoJob_Page_DrawsRewardAccuracyAndMargins()
    {
        var key = await TenantKey();
        using var api = system.Client(key);
        var dataset = await SystemUnderTest.UploadDatasetIdAsync(api, "dpo_en_demo.json");
        var job = await Submit(api, new()
        {
            ["model_name_or_path"] = "builtin:tiny-qwen2", ["stage"] = "dpo", ["finetuning_type"] = "lora", ["dataset"] = dataset, ["sequence_parallel_size"] = 2,
            ["max_steps"] = 6, ["max_samples"] = 12, ["cutoff_len"] = 256, ["learning_rate"] = 1e-3, ["logging_steps"] = 1,
        });
        await SignIn(key);
        await _page.GotoAsync($"/#/jobs/{job}");
        await Expect(_page.Locator("#job-state")).ToHaveTextAsync("succeeded", new() { Timeout = (float)JobTimeout.TotalMilliseconds });
        await Expect(_page.Locator("[data-chart=rewards]")).ToBeVisibleAsync();
        await Expect(_page.Locator("[data-chart=rewards]")).ToHaveAttributeAsync("data-points", "6");
        await Expect(_page.Locator("[data-chart=rewards] .u-legend")).ToContainTextAsync("accuracy");
        await Expect(_page.Locator("[data-chart=rewards] .u-legend")).ToContainTextAsync("margin");
        await Expect(_page.Locator("#artifacts")).ToContainTextAsync("adapter_model.safetensors");
        await Screenshot("job-dpo.png");
    }

    [Fact]
    public async Task NewJob_BadDatasetAndBadSpecs_ShowLineNumbersAndFieldErrors()
    {
        await SignIn(await TenantKey());
        await _page.GotoAsync("/#/new");
        var bad = Path.Combine(system.DataDir, "broken.jsonl");
        await File.WriteAllTextAsync(bad, "{\"instruction\": \"hi\", \"output\": \"hello\"}\n{\"instruction\": \"oops\", \"output\": \n");
        await _page.SetInputFilesAsync("#dataset-file", bad);
        await _page.ClickAsync("#upload-dataset");
        await Expect(_page.Locator("#dataset-problem")).ToContainTextAsync("line 2");
        await Expect(_page.Locator("#dataset-problem")).ToContainTextAsync("malformed JSON");

        await _page.SetInputFilesAsync("#dataset-file", Path.Combine(SystemUnderTest.Root, "data", "identity.json"));
        await _page.ClickAsync("#upload-dataset");
        await Expect(_page.Locator("#dataset-result .ok-box")).ToBeVisibleAsync();
        await _page.FillAsync("#f-learning_rate", "-1");
        await _page.FillAsync("#f-cutoff_len", "0");
        await _page.ClickAsync("#submit-job");
        await Expect(_page.Locator("[data-error-for=learning_rate]")).ToContainTextAsync("must be > 0");
        await Expect(_page.Locator("[data-error-for=cutoff_len]")).ToContainTextAsync("must be 1 to");
        Assert.EndsWith("#/new", _page.Url);
        await Screenshot("new-job-errors.png");

        // The form's keys carry over to the YAML editor (js-yaml, in the browser).
        await _page.ClickAsync("#form-to-yaml");
        await Expect(_page.Locator("#spec-text")).ToBeVisibleAsync();
        var yaml = await _page.InputValueAsync("#spec-text");
        Assert.Contains("model_name_or_path: builtin:tiny-llama", yaml);
        Assert.Contains("learning_rate: -1", yaml);
        Assert.Matches(@"dataset: ds-[0-9a-f]+", yaml);
        await _page.FillAsync("#spec-text", "model_name_or_path: builtin:tiny-qwen2\nlerning_rate: 1e-3\n");
        await _page.ClickAsync("#submit-job");
        await Expect(_page.Locator("#submit-errors")).ToContainTextAsync("did you mean 'learning_rate'");

        // A valid YAML spec; the dataset picked above fills in `dataset`.
        await _page.FillAsync("#spec-text", "model_name_or_path: builtin:tiny-qwen2\nstage: sft\nmax_steps: 2\nlearning_rate: 1e-3\ncutoff_len: 256\n");
        await _page.ClickAsync("#submit-job");
        await _page.WaitForURLAsync(new Regex(@"#/jobs/[0-9a-f-]{36}$"));
        await Expect(_page.Locator(".page-head")).ToContainTextAsync("builtin:tiny-qwen2");
    }

    private async Task SignIn(string key)
    {
        if (!_page.Url.StartsWith(system.BaseUrl.ToString())) await _page.GotoAsync("/");
        await _page.FillAsync("#api-key", key);
        await _page.ClickAsync("button[type=submit]");
        await Expect(_page.Locator("#jobs-table")).ToBeVisibleAsync();
        await Expect(_page.Locator("#live")).ToHaveAttributeAsync("data-status", "live");
    }

    /// <summary>A key of the "demo" tenant: every test's jobs show in one list, as a user would see them.</summary>
    private async Task<string> TenantKey()
    {
        using var admin = system.Client();
        var response = await admin.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("demo", KeyRoles.Tenant, "browser tests"), WireJson.Options);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
    }

    /// <summary>The whole page from its top (the header is sticky: a scrolled page would show it mid-picture).</summary>
    private async Task Screenshot(string name)
    {
        await _page.EvaluateAsync("() => window.scrollTo(0, 0)");
        await _page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, name), FullPage = true });
    }

    private static async Task<Guid> Submit(HttpClient api, JsonObject spec)
    {
        var response = await api.PostAsJsonAsync("/v1/jobs", spec);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
    }
}
