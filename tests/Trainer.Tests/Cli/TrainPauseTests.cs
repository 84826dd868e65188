using LongSeqService.Shared.Runs;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary>The trainer's side of a pause (<see cref="PauseProtocol"/>): with the pause file present it checkpoints the
/// step it finished, marks the pause done and exits 75; resumed from that checkpoint it ends with the weights and
/// log of a run that never stopped.</summary>
[Trait("Category", "Slow")]
public sealed class TrainPauseTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lss-pause-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string[] Args(string output, params string[] more) =>
        ["train", "--model_name_or_path", "builtin:tiny-llama", "--dataset", Path.Combine(RepoPaths.Root, "data", "identity.json"),
         "--output_dir", output, "--max_steps", "4", "--logging_steps", "1", "--seed", "5", .. more];

    [Fact]
    public void Train_PauseFilePresent_CheckpointsExits75AndResumesExactly()
    {
        string straight = Path.Combine(_dir, "straight"), paused = Path.Combine(_dir, "paused"), pauseFile = Path.Combine(_dir, "run.pause");
        var a = TrainerProcess.Run(_dir, Args(straight));
        Assert.True(a.ExitCode == 0, a.ToString());

        File.WriteAllText(pauseFile, "");
        var env = new Dictionary<string, string> { [PauseProtocol.FileVariable] = pauseFile };
        var b = TrainerProcess.RunWith(env, _dir, TimeSpan.FromSeconds(120), Args(paused));
        Assert.True(b.ExitCode == PauseProtocol.ExitCode, b.ToString());
        Assert.Equal("1", File.ReadAllText(PauseProtocol.DoneMarker(pauseFile)));      // it stopped after its first step
        Assert.True(File.Exists(Path.Combine(paused, "checkpoint-1", "trainer_state.json")));
        Assert.False(File.Exists(Path.Combine(paused, "model.safetensors")));           // no final model: the run is not over

        var c = TrainerProcess.Run(_dir, Args(paused, "--resume_from_checkpoint", Path.Combine(paused, "checkpoint-1")));
        Assert.True(c.ExitCode == 0, c.ToString());
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "model.safetensors")), File.ReadAllBytes(Path.Combine(paused, "model.safetensors")));
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "trainer_log.jsonl")).Select(Loss), File.ReadAllLines(Path.Combine(paused, "trainer_log.jsonl")).Select(Loss));
    }

    private static double Loss(string line) => System.Text.Json.Nodes.JsonNode.Parse(line)!["loss"]!.GetValue<double>();
}
