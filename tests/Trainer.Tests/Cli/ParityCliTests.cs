using System.Text.Json.Nodes;

namespace LongSeqService.Trainer.Tests.Cli;

/// <summary><c>trainer parity</c> as a real child process.</summary>
public class ParityCliTests
{
    [Fact]
    public void Parity_Json_PrintsOneObjectWithTheThreeDifferencesAndExitsZero()
    {
        var r = TrainerProcess.Run(Path.GetTempPath(), "parity", "--model", "builtin:tiny-qwen2", "--sp", "3", "--mode", "zigzag-ring",
            "--seq-len", "50", "--steps", "2", "--dtype", "float64", "--stage", "dpo", "--finetuning-type", "lora", "--gradient-checkpointing", "--json");

        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        var report = JsonNode.Parse(lines[0])!.AsObject();
        Assert.True(report["max_loss_abs_diff"]!.GetValue<double>() <= 1e-9);
        Assert.True(report["max_grad_rel_diff"]!.GetValue<double>() <= 1e-8);
        Assert.True(report["max_param_abs_diff"]!.GetValue<double>() <= 1e-8);
        Assert.True(report["passed"]!.GetValue<bool>());
        Assert.Equal(3, (int)report["sp"]!);
        Assert.Equal("dpo", (string)report["stage"]!);
        Assert.Equal(2, report["losses_spN"]!.AsArray().Count);
    }

    /// <summary>tiny-qwen2 has 6 query heads: Ulysses cannot split them over 4 ranks; hybrid (Ulysses 2 × ring 2) can.</summary>
    [Fact]
    public void Parity_UlyssesWithHeadsNotDivisible_ExitsTwoSuggestingHybrid()
    {
        var r = TrainerProcess.Run(Path.GetTempPath(), "parity", "--model", "builtin:tiny-qwen2", "--sp", "4", "--mode", "ulysses", "--seq-len", "48", "--json");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Equal("", r.Stdout.Trim());
        var line = Assert.Single(r.StderrLines);
        Assert.StartsWith("error: sequence_parallel_mode:", line);
        Assert.Contains("hybrid", line);
        Assert.Contains("(6)", line);
    }

    [Fact]
    public void Parity_Packing_PackedRowsAtSp2EqualTheExamplesUnpackedAtSp1()
    {
        var r = TrainerProcess.Run(Path.GetTempPath(), "parity", "--packing", "true", "--model", "builtin:tiny-llama", "--sp", "2", "--mode", "zigzag-ring",
            "--seq-len", "96", "--batch-size", "10", "--steps", "2", "--gradient-checkpointing", "--json");

        Assert.True(r.ExitCode == 0, r.ToString());
        var report = JsonNode.Parse(r.Stdout.Trim())!.AsObject();
        Assert.True(report["passed"]!.GetValue<bool>());
        Assert.True(report["packing"]!.GetValue<bool>());
        Assert.InRange((int)report["rows"]!, 2, 9); // several examples share a row
        Assert.True(report["max_grad_rel_diff"]!.GetValue<double>() <= 1e-8);
    }

    /// <summary>ZeRO-3 at SP 2 × DP 2 against a single rank at stage 0, and what <c>bench</c> reports for it.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public void ParityAndBench_ZeroStage3_PassAndReportTheStage()
    {
        var r = TrainerProcess.Run(Path.GetTempPath(), "parity", "--model", "builtin:tiny-llama", "--sp", "2", "--dp", "2", "--zero-stage", "3",
            "--seq-len", "50", "--steps", "2", "--dtype", "float64", "--gradient-checkpointing", "--json");

        Assert.True(r.ExitCode == 0, r.ToString());
        var report = JsonNode.Parse(r.Stdout.Trim())!.AsObject();
        Assert.True(report["passed"]!.GetValue<bool>());
        Assert.Equal(3, (int)report["zero_stage"]!);
        Assert.True(report["max_grad_rel_diff"]!.GetValue<double>() <= 1e-8);

        var bench = TrainerProcess.Run(Path.GetTempPath(), "bench", "--model", "builtin:tiny-llama", "--sp", "2", "--zero-stage", "3", "--seq-len", "64", "--steps", "1", "--warmup", "0", "--json");
        Assert.True(bench.ExitCode == 0, bench.ToString());
        Assert.Contains("\"zero_stage\":3", bench.Stdout.Replace(" ", ""));
    }
}
