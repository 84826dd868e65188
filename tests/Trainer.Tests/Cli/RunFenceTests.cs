using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>The run directory's fencing token (issue 9's partition case): a trainer whose attempt was
/// superseded stops at its next write into the output directory.</summary>
public sealed class RunFenceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("run-fence-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Claim_LaterAttempt_SupersedesTheEarlierAndIsNeverOverwrittenByIt()
    {
        var file = Path.Combine(_dir, "attempt.fence");
        RunFence.Claim(file, 1);
        new RunFence(file, 1).Check();

        RunFence.Claim(file, 2);

        Assert.Throws<SupersededException>(() => new RunFence(file, 1).Check());
        Assert.Throws<SupersededException>(() => RunFence.Claim(file, 1));
        new RunFence(file, 2).Check();
        Assert.Throws<SupersededException>(() => new RunFence(Path.Combine(_dir, "missing"), 1).Check());
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Trainer_AttemptSupersededMidRun_StopsWithoutWritingMoreAndExits76()
    {
        var fence = Path.Combine(_dir, "attempt.fence");
        var output = Path.Combine(_dir, "out");
        var log = Path.Combine(output, "trainer_log.jsonl");
        RunFence.Claim(fence, 1);
        using var trainer = TrainerProcess.Start(_dir, new Dictionary<string, string> { [RunFence.FileVariable] = fence, [RunFence.AttemptVariable] = "1" },
            "train", "--model_name_or_path", "builtin:tiny-llama", "--dataset", RepoPaths.Data("identity.json"), "--template", "llama3",
            "--output_dir", output, "--max_steps", "400", "--save_steps", "2", "--logging_steps", "1", "--cutoff_len", "64");
        var stderr = trainer.StandardError.ReadToEndAsync();
        for (var deadline = DateTime.UtcNow.AddMinutes(2); !(File.Exists(log) && File.ReadAllLines(log).Length >= 3); await Task.Delay(50))
            Assert.True(DateTime.UtcNow < deadline && !trainer.HasExited, "the trainer never logged 3 steps: " + (trainer.HasExited ? await stderr : ""));

        RunFence.Claim(fence, 2);                                                   // another host took the run over
        int linesAtClaim = File.ReadAllLines(log).Length;
        var checkpointsAtClaim = Checkpoints.List(output).Count;

        Assert.True(trainer.WaitForExit(TimeSpan.FromMinutes(2)), "the superseded trainer kept running");
        Assert.Equal(RunFence.ExitCode, trainer.ExitCode);
        Assert.Contains("superseded", await stderr);
        // At most the one write whose check passed just before the claim; no final model.
        Assert.InRange(File.ReadAllLines(log).Length, linesAtClaim, linesAtClaim + 1);
        Assert.InRange(Checkpoints.List(output).Count, checkpointsAtClaim, checkpointsAtClaim + 1);
        Assert.False(File.Exists(Path.Combine(output, "model.safetensors")));
    }
}
