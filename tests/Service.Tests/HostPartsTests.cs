using System.Text.Json;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Runs;
using LongSeqService.Trainer.Host;

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
        var o = HostCommand.Parse(["--api", "http://h:5080", "--token", "lsk_x", "--slots", "3", "--name", "n1", "--trainer-command", "dotnet /opt/trainer.dll"]);
        Assert.Equal((new Uri("http://h:5080"), "lsk_x", 3, "n1"), (o.Api, o.Token, o.Slots, o.Name));
        Assert.Equal(["dotnet", "/opt/trainer.dll"], o.TrainerCommand);
        Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token", "k", "--slot", "3"]));
        Assert.Throws<ArgumentException>(() => HostCommand.Parse(["--api", "http://h", "--token", "k", "--slots", "0"]));
    }
}
