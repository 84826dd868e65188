using LongSeqService.Shared.Hosts;
using System.Text.Json;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Runs;
using LongSeqService.Trainer.Host;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Service.Tests;

/// <summary>The host's small parts: the run config it writes, the checkpoint it resumes from, the log
/// tailer, the trainer log's time fields, and its command line.</summary>
public sealed class HostPartsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("host-parts-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void RunConfig_Write_IsJsonTheSpecParserReadsBack()
    {
        var spec = new JobSpec { ModelNameOrPath = "builtin:tiny-qwen2", Dataset = "ds-1", SequenceParallelSize = 2, LearningRate = 1e-4, Template = "qwen" };
        var run = new StartRunResponse(Guid.NewGuid(), 2, spec, "/data/datasets/ab/ab.json", _dir, Path.Combine(_dir, "output"));
        var path = RunConfig.Write(run, Path.Combine(_dir, "output", "checkpoint-4"));

        Assert.EndsWith(".json", path);
        var back = JobSpecParser.FromJson(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject());
        Assert.Equal(spec with { Dataset = run.DatasetPath, OutputDir = run.OutputDir, OverwriteOutputDir = true, ResumeFromCheckpoint = Path.Combine(_dir, "output", "checkpoint-4") }, back);
    }

    [Fact]
    public void NewestCheckpoint_SkipsFoldersWithoutTrainerState()
    {
        foreach (var (step, complete) in new[] { (2, true), (10, true), (12, false) })
        {
            var d = Directory.CreateDirectory(Path.Combine(_dir, $"checkpoint-{step}")).FullName;
            if (complete) File.WriteAllText(Path.Combine(d, "trainer_state.json"), "{}");
        }
        Directory.CreateDirectory(Path.Combine(_dir, "checkpoint-x"));
        Assert.Equal(Path.Combine(_dir, "checkpoint-10"), RunConfig.NewestCheckpoint(_dir));
        Assert.Null(RunConfig.NewestCheckpoint(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public async Task Tailer_SendsCompleteLinesOnceAndRereadsARewrittenFile()
    {
        var log = Path.Combine(_dir, "trainer_log.jsonl");
        var sent = new List<int>();
        var tailer = new TrainerLogTailer(log, (records, _) => { sent.AddRange(records.Select(r => r.CurrentSteps)); return Task.CompletedTask; }, TimeSpan.FromMilliseconds(10));

        await tailer.PollAsync(default); // no file yet
        File.WriteAllText(log, "{\"current_steps\": 1, \"total_steps\": 3}\n{\"current_steps\": 2, \"tot");
        await tailer.PollAsync(default);
        Assert.Equal([1], sent); // the half-written line waits
        File.AppendAllText(log, "al_steps\": 3}\nnot json\n");
        await tailer.PollAsync(default);
        Assert.Equal([1, 2], sent);
        File.WriteAllText(log, "{\"current_steps\": 1, \"total_steps\": 3}\n"); // rewritten (shorter)
        await tailer.PollAsync(default);
        Assert.Equal([1, 2, 1], sent);
    }

    [Fact]
    public async Task Tailer_KeepsRecordsWhenSendingFails()
    {
        var log = Path.Combine(_dir, "trainer_log.jsonl");
        File.WriteAllText(log, "{\"current_steps\": 1, \"total_steps\": 2}\n");
        bool up = false;
        var sent = new List<int>();
        var tailer = new TrainerLogTailer(log, (records, _) =>
        {
            if (!up) throw new HttpRequestException("down");
            sent.AddRange(records.Select(r => r.CurrentSteps));
            return Task.CompletedTask;
        }, TimeSpan.FromMilliseconds(10));
        await tailer.PollAsync(default);
        File.AppendAllText(log, "{\"current_steps\": 2, \"total_steps\": 2}\n");
        up = true;
        await tailer.PollAsync(default);
        Assert.Equal([1, 2], sent);
    }

    [Theory]
    [InlineData("\"0:01:23\"", 83.0)]
    [InlineData("\"25:00:00\"", 90000.0)]
    [InlineData("12.5", 12.5)]
    [InlineData("\"soon\"", null)]
    public void TrainerLogRecord_Seconds_ReadsNumbersAndHms(string json, double? seconds)
    {
        Assert.Equal(seconds, TrainerLogRecord.Seconds(JsonDocument.Parse(json).RootElement));
    }

    [Fact]
    public void TrainerLogRecord_KeepsUnknownKeysAndDpoRewards()
    {
        var r = JsonSerializer.Deserialize<TrainerLogRecord>("{\"current_steps\": 3, \"total_steps\": 9, \"rewards/accuracies\": 0.75, \"grad_norm\": 1.5}")!;
        Assert.Equal(0.75, r.RewardsAccuracies);
        Assert.Equal(1.5, r.Extra!["grad_norm"].GetDouble());
    }

    [Fact]
    public void HostCommand_Parse_ReadsOptionsAndRefusesUnknownOnes()
    {
        var keyFile = Path.Combine(_dir, "host.key");
        File.WriteAllText(keyFile, "lsk_x\n");
        var o = HostCommand.Parse(["--api", "http://h:5080", "--token-file", keyFile, "--slots", "3", "--name", "n1", "--state-dir", _dir, "--trainer-command", "dotnet /opt/trainer.dll"]);
        Assert.Equal((new Uri("http://h:5080"), "lsk_x", 3, "n1", _dir), (o.Api, o.Token, o.Slots, o.Name, o.StateDir));
        Assert.Equal(["dotnet", "/opt/trainer.dll"], o.TrainerCommand);
        Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token-file", keyFile, "--slot", "3"]));
        Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token-file", keyFile, "--slots", "0"]));
    }

    [Fact]
    public void HostCommand_Parse_Artifacts_DefaultsToSharedAndRefusesOthers()
    {
        var keyFile = Path.Combine(_dir, "host.key");
        File.WriteAllText(keyFile, "lsk_x\n");
        Assert.Equal(ArtifactAccess.Shared, HostCommand.Parse(["--api", "http://h", "--token-file", keyFile, "--state-dir", _dir]).Artifacts);
        Assert.Equal(ArtifactAccess.Remote, HostCommand.Parse(["--api", "http://h", "--token-file", keyFile, "--state-dir", _dir, "--artifacts", "remote"]).Artifacts);
        var e = Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token-file", keyFile, "--artifacts", "nfs"]));
        Assert.Contains("--artifacts", e.Message);
    }

    [Fact]
    public void HostCommand_Parse_KeyOnTheCommandLine_IsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token", "lsk_secret"]));
        Assert.Contains("--token-file", e.Message);
        Assert.DoesNotContain("lsk_secret", e.Message);
        Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token-file", Path.Combine(_dir, "missing.key")]));
    }

    [Fact]
    public void ChildEnvironment_From_KeepsWhatProcessesNeedAndDropsSecrets()
    {
        var env = new System.Collections.Hashtable
        {
            ["PATH"] = "/usr/bin", ["HOME"] = "/root", ["LC_ALL"] = "C", ["OMP_NUM_THREADS"] = "2", ["HYDRA_HOST_FILE"] = "/h",
            ["LONGSEQ_HOST_KEY"] = "lsk_host", ["LONGSEQ_BOOTSTRAP_API_KEY"] = "lsk_admin", ["LONGSEQ_DB"] = "Host=x;Password=p",
            ["PGPASSWORD"] = "p", ["DOTNET_SECRET_TOKEN"] = "t", ["AWS_SECRET_ACCESS_KEY"] = "a",
        };
        var child = ChildEnvironment.From(env).ToDictionary();
        Assert.Equal(["HOME", "HYDRA_HOST_FILE", "LC_ALL", "OMP_NUM_THREADS", "PATH"], child.Keys.Order());
    }

    [Fact]
    public async Task ReportSpool_ApiAway_KeepsReportsOnDiskAndReplaysThemInOrder()
    {
        var spoolDir = Path.Combine(_dir, "spool");
        var handler = new RecordingHandler { Up = false };
        using var api = new HostApiClient(new Uri("http://api"), "k", handler);
        var spool = new ReportSpool(spoolDir, api, _ => { }, TextWriter.Null);
        var job = Guid.NewGuid();
        for (int step = 1; step <= 3; step++)
            spool.Add(new SpooledReport(7, job, 2, new RunMetricsRequest(2, [new TrainerLogRecord { CurrentSteps = step, TotalSteps = 3 }]), null));
        spool.Add(new SpooledReport(7, job, 2, null, new FinishRunRequest(2, RunOutcomes.Succeeded, 0, null)));

        Assert.False(await spool.DrainAsync(default));
        Assert.Equal(4, Directory.GetFiles(spoolDir, "*.json").Length);
        handler.Up = true;
        var restarted = new ReportSpool(spoolDir, api, _ => { }, TextWriter.Null); // a new host process finds them
        Assert.True(await restarted.DrainAsync(default));

        Assert.Equal(["metrics:1", "metrics:2", "metrics:3", "finish"], handler.Taken);
        Assert.Empty(Directory.GetFiles(spoolDir));
    }

    [Fact]
    public async Task ReportSpool_StaleAttempt_DropsTheReportAndStopsThatTrainer()
    {
        var handler = new RecordingHandler { Status = System.Net.HttpStatusCode.Conflict };
        using var api = new HostApiClient(new Uri("http://api"), "k", handler);
        var refused = new List<int>();
        var spool = new ReportSpool(Path.Combine(_dir, "spool"), api, r => refused.Add(r.Attempt), TextWriter.Null);
        spool.Add(new SpooledReport(7, Guid.NewGuid(), 1, new RunMetricsRequest(1, [new TrainerLogRecord { CurrentSteps = 1, TotalSteps = 3 }]), null));
        Assert.True(await spool.DrainAsync(default));
        Assert.Equal([1], refused);
        Assert.Equal(0, spool.Pending);
    }

    [Fact]
    public async Task TrainerProcess_LeaseNotRenewed_KillsTheTrainerAndLeavesTheMarker()
    {
        var lease = Path.Combine(_dir, "host.lease");
        File.WriteAllText(lease, "");
        var marker = Path.Combine(_dir, "lease-expired");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var trainer = await TrainerProcess.StartAsync(["sleep", "60"], [], _dir, Path.Combine(_dir, "t.log"), lease: new TrainerProcess.Lease(lease, 2, marker));

        int exit = await trainer.WaitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token);

        Assert.Equal(137, exit);
        Assert.InRange(clock.Elapsed.TotalSeconds, 2, 10);
        Assert.StartsWith("lease expired", File.ReadAllText(marker));
    }

    [Fact]
    public async Task TrainerProcess_LeaseRenewed_LetsTheTrainerFinish()
    {
        var lease = Path.Combine(_dir, "host.lease");
        File.WriteAllText(lease, "");
        using var renew = new CancellationTokenSource();
        var renewing = Task.Run(async () => { while (!renew.IsCancellationRequested) { File.SetLastWriteTimeUtc(lease, DateTime.UtcNow); await Task.Delay(300); } });
        using var trainer = await TrainerProcess.StartAsync(["sleep", "5"], [], _dir, Path.Combine(_dir, "t.log"), lease: new TrainerProcess.Lease(lease, 2, Path.Combine(_dir, "m")));

        int exit = await trainer.WaitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token);
        await renew.CancelAsync();
        await renewing;

        Assert.Equal(0, exit);
        Assert.False(File.Exists(Path.Combine(_dir, "m")));
    }

    /// <summary>An API that is down (connection refused) or answers; records what it took, in order.</summary>
    private sealed class RecordingHandler : HttpMessageHandler
    {
        public bool Up { get; set; } = true;
        public System.Net.HttpStatusCode Status { get; init; } = System.Net.HttpStatusCode.NoContent;
        public List<string> Taken { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            if (!Up) throw new HttpRequestException("Connection refused");
            var body = JsonDocument.Parse(await request.Content!.ReadAsStringAsync(ct)).RootElement;
            if (Status == System.Net.HttpStatusCode.NoContent)
                Taken.Add(request.RequestUri!.AbsolutePath.EndsWith("/metrics") ? $"metrics:{body.GetProperty("records")[0].GetProperty("current_steps").GetInt32()}" : "finish");
            return new HttpResponseMessage(Status) { Content = new StringContent("") };
        }
    }
}
