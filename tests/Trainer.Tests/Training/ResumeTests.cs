using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// 2×N steps straight against N steps, a crash right after the checkpoint, and a resume for the other N —
/// through the real TrainingRun with files in a temporary output_dir. Weights, optimizer, schedule, data
/// position and random state must all come back: the final parameters are compared bit for bit.
/// </summary>
public class ResumeTests
{
    public static TheoryData<string> Cases() => ["sft-full", "sft-bf16", "dpo-lora", "dpo-full"];

    /// <summary>Logging every 2 steps: a log line after the resume must average the same window as the straight run's.</summary>
    private static JobSpec SpecFor(string name, string dir) => (name switch
    {
        "sft-full" => RunDirs.Sft(dir),
        "sft-bf16" => RunDirs.Sft(dir) with { Bf16 = true },   // bf16 weights, fp32 master weights in the optimizer state
        "dpo-lora" => RunDirs.Dpo(dir, "lora") with { GradientCheckpointing = true },   // precompute_ref_logps, LoRA dropout 0.1 replayed by the recomputation
        "dpo-full" => RunDirs.Dpo(dir, "full"),          // precompute_ref_logps with the policy's own weights as reference
        _ => throw new ArgumentException(name),
    }) with { LoggingSteps = 2 };

    [Theory]
    [MemberData(nameof(Cases))]
    public void CrashAfterCheckpointThenResume_EqualsStraightRun(string name)
    {
        using var dirs = new RunDirs();
        var (straightDir, resumedDir) = (dirs.Path("straight"), dirs.Path("resumed"));

        var straight = RunDirs.Train(SpecFor(name, straightDir));
        var crash = Assert.Throws<RankFailedException>(() => RunDirs.Train(SpecFor(name, resumedDir), new CrashAfterCheckpoint()));
        Assert.IsType<SimulatedCrash>(crash.InnerException);
        Assert.True(Directory.Exists(Path.Combine(resumedDir, "checkpoint-2")));
        Assert.False(File.Exists(Path.Combine(resumedDir, "trainer_state.json")));          // the run never finished
        var resumed = RunDirs.Train(SpecFor(name, resumedDir) with { ResumeFromCheckpoint = "latest" });

        Assert.Equal(4, straight.History.Count);
        Assert.Equal(2, resumed.History.Count);                                            // only steps 3 and 4 ran again
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(straight.History[2 + i].Loss, resumed.History[i].Loss);
            Assert.Equal(straight.History[2 + i].Lr, resumed.History[i].Lr);
            Assert.Equal(straight.History[2 + i].Tokens, resumed.History[i].Tokens);
        }
        Assert.True(straight.FinalParameters!.AsSpan().SequenceEqual(resumed.FinalParameters!), "final parameters differ");

        // trainer_log.jsonl: the same lines (time fields aside), the crashed run's lines kept, none repeated.
        var (a, b) = (RunDirs.Log(straightDir), RunDirs.Log(resumedDir));
        Assert.Equal([1, 2, 4], b.Select(o => (int)o["current_steps"]!));                  // the first step, then every 2
        foreach (var key in new[] { "current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "trained_tokens", "grad_norm" })
            Assert.Equal(a.Select(o => o[key]!.ToJsonString()), b.Select(o => o[key]!.ToJsonString()));
        var (stateA, stateB) = (State(straightDir), State(resumedDir));
        foreach (var key in new[] { "global_step", "epoch", "optimizer_step", "trained_tokens" })
            Assert.Equal(stateA[key]!.ToJsonString(), stateB[key]!.ToJsonString());
    }

    private static JsonObject State(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "trainer_state.json")))!.AsObject();

    [Fact]
    public void Resume_FromExplicitCheckpointPathOfAnotherRun_EqualsStraightRun()
    {
        using var dirs = new RunDirs();
        var straightDir = dirs.Path("straight");
        var straight = RunDirs.Train(RunDirs.Sft(straightDir));

        var resumed = RunDirs.Train(RunDirs.Sft(dirs.Path("other")) with { ResumeFromCheckpoint = Path.Combine(straightDir, "checkpoint-2") });

        Assert.Equal(2, resumed.History.Count);
        Assert.True(straight.FinalParameters!.AsSpan().SequenceEqual(resumed.FinalParameters!));
    }
}
