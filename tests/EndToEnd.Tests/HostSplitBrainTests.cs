using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Keys;
using LongSeqService.Shared.Wire;

namespace LongSeqService.EndToEnd.Tests;

/// <summary>Real API and host processes with a short host timeout (6 s, so a local lease of 3 s) and the
/// stand-in trainer (tests/Service.Tests/fake-trainer.sh), which logs who held the run and when.</summary>
public sealed class SplitBrainSystem : SystemUnderTest
{
    public SplitBrainSystem()
    {
        Slots = 2;
        ApiEnvironment = new()
        {
            ["Scheduler__HostTimeoutSeconds"] = "6", ["Scheduler__HeartbeatSeconds"] = "1", ["Scheduler__LivenessCron"] = "*/1 * * * * *",
        };
        TrainerCommand = "bash " + Path.Combine(Root, "tests", "Service.Tests", "fake-trainer.sh");
    }
}

/// <summary>Issue 9's double run: a host stopped (SIGSTOP) past the liveness timeout while a second host
/// is there. Its run is placed on the second host; the stopped host's trainer must have stopped writing
/// before that (its lease ran out), and when the host wakes it learns it was lost and runs nothing.</summary>
[Trait("Category", "Slow")]
public sealed class HostSplitBrainTests(SplitBrainSystem system) : IClassFixture<SplitBrainSystem>
{
    [Fact]
    public async Task HostStoppedPastTheTimeout_RunMovesOnce_EachStepLoggedOnceAndOneTrainerAtATime()
    {
        using var api = system.Client();
        var dataset = await SystemUnderTest.UploadDatasetIdAsync(api, "identity.json");
        var submitted = await api.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset, sequence_parallel_size = 2, max_steps = 16, seed = 77 });
        Assert.True(submitted.IsSuccessStatusCode, await submitted.Content.ReadAsStringAsync());
        var job = (await submitted.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!.Id;
        var runDir = Path.Combine(system.DataDir, "jobs", job.ToString());
        for (var deadline = DateTime.UtcNow.AddSeconds(60); !File.Exists(Path.Combine(runDir, "output", "checkpoint-2", "trainer_state.json")); await Task.Delay(100))
            Assert.True(DateTime.UtcNow < deadline, "the run never started:\n" + system.Logs());

        var keyB = (await (await api.PostAsJsonAsync("/v1/keys", new CreateKeyRequest("hosts", KeyRoles.Host, "host b"), WireJson.Options))
            .Content.ReadFromJsonAsync<CreatedKeyDto>(WireJson.Options))!.Key;
        system.StartHost(system.HostName + "-b", keyB, 2);
        int stopped = system.HostProcess!.Id;
        Assert.Equal(0, kill(stopped, 19)); // SIGSTOP
        await Task.Delay(TimeSpan.FromSeconds(14));
        Assert.Equal(0, kill(stopped, 18)); // SIGCONT

        JobDto done = null!;
        for (var deadline = DateTime.UtcNow.AddSeconds(90); DateTime.UtcNow < deadline; await Task.Delay(250))
        {
            done = (await api.GetFromJsonAsync<JobDto>($"/v1/jobs/{job}", WireJson.Options))!;
            if (JobStates.IsTerminal(done.State)) break;
        }
        Assert.True(done.State == JobStates.Succeeded, $"job ended {done.State}: {await api.GetStringAsync($"/v1/jobs/{job}/events")}\n{system.Logs()}");
        Assert.True(done.Attempt >= 2, "the run should have moved to the second host");

        var steps = File.ReadAllLines(Path.Combine(runDir, "output", "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!["current_steps"]!.GetValue<int>()).ToList();
        Assert.Equal(Enumerable.Range(1, 16), steps);
        // Each trainer held the run from its start to its last tick (or its end); no two of those overlap.
        var spans = File.ReadAllLines(Path.Combine(runDir, "holders.log")).Select(l => l.Split(' '))
            .GroupBy(p => p[1]).Select(g => (Pid: g.Key, From: g.Min(p => double.Parse(p[2], CultureInfo.InvariantCulture)), To: g.Max(p => double.Parse(p[2], CultureInfo.InvariantCulture))))
            .OrderBy(s => s.From).ToList();
        Assert.True(spans.Count >= 2, "two trainers should have held the run, one after the other");
        for (int i = 1; i < spans.Count; i++)
            Assert.True(spans[i].From > spans[i - 1].To, $"trainer {spans[i].Pid} started at {spans[i].From:F2} while {spans[i - 1].Pid} still wrote until {spans[i - 1].To:F2}");
        var events = await api.GetStringAsync($"/v1/jobs/{job}/events");
        Assert.Contains("lost", events);
    }

    [System.Runtime.InteropServices.DllImport("libc")] private static extern int kill(int pid, int sig);
}
