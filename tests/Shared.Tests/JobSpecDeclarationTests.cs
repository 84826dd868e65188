using System.Text.Json.Serialization;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Tests;

/// <summary>The declaration and what is derived from it: every key declared, the README's table, DeepSpeed files.</summary>
public sealed class JobSpecDeclarationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("spec-decl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void JobSpecKeys_EveryWireProperty_IsDeclaredOnceInOrder()
    {
        var wire = typeof(JobSpec).GetProperties().Select(p => p.GetCustomAttributes(typeof(JsonPropertyNameAttribute), false).Cast<JsonPropertyNameAttribute>().FirstOrDefault()?.Name)
            .Where(n => n != null).ToHashSet();
        Assert.Equal(wire.Order(), JobSpecKeys.All.Select(k => k.Name).Order());
        Assert.Equal("model_name_or_path", JobSpecKeys.All[0].Name);
        Assert.Empty(JobSpecKeys.Ignored.Select(k => k.Name).Intersect(wire!));
    }

    [Fact]
    public void JobSpecKeys_DefaultsComeFromTheRecord()
    {
        JobSpecKeys.TryGet("learning_rate", out var lr);
        JobSpecKeys.TryGet("sequence_parallel_mode", out var mode);
        JobSpecKeys.TryGet("stage", out var stage);
        Assert.Equal((5e-5, "zigzag-ring"), ((double)lr.Default!, mode.DefaultText));
        Assert.Equal(["sft", "dpo", "pt"], stage.Allowed);
    }

    [Fact]
    public void JobSpecTable_Readme_MatchesTheDeclaration()
    {
        var readme = Path.Combine(RepoRoot(), "README.md");
        var text = File.ReadAllText(readme);
        int start = text.IndexOf(JobSpecTable.Begin, StringComparison.Ordinal), end = text.IndexOf(JobSpecTable.End, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, "README.md lacks the job-spec-table markers");
        var current = text[start..(end + JobSpecTable.End.Length)] + "\n";
        var expected = JobSpecTable.Markdown();
        if (current != expected && Environment.GetEnvironmentVariable("LONGSEQ_UPDATE_README") == "1")
        {
            File.WriteAllText(readme, text[..start] + expected + text[(end + JobSpecTable.End.Length + 1)..]);
            return;
        }
        Assert.True(current == expected, "README.md's job-spec table differs from src/Shared/Jobs/JobSpec.cs; " +
            "run LONGSEQ_UPDATE_README=1 dotnet test tests/Shared.Tests --filter JobSpecTable to regenerate it");
    }

    [Theory]
    [InlineData("""{"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"}}, "bf16": {"enabled": "auto"}}""", 3, 1)]
    [InlineData("""{"zero_optimization": {"stage": 2}}""", 2, 0)]
    [InlineData("""{"train_batch_size": "auto"}""", 0, 0)]
    public void FromPairs_DeepSpeedFile_SetsZeroStageWithOneWarningEach(string config, int stage, int warningCount)
    {
        File.WriteAllText(Path.Combine(_dir, "ds.json"), config);
        var warnings = new List<string>();
        var spec = JobSpecParser.FromPairs([new("deepspeed", "ds.json")], warnings, p => File.ReadAllText(Path.Combine(_dir, p)));
        Assert.Equal(stage, spec.ZeroStage);
        Assert.Equal(warningCount, warnings.Count);
        if (warningCount > 0) Assert.Contains(warnings, w => w.StartsWith("deepspeed: ") && w.Contains("offload") && !w.Contains("ZeRO stage 3")); // said once; stage 3 is honoured
    }

    [Fact]
    public void FromPairs_DeepSpeedAndZeroStageDisagree_IsAnError()
    {
        File.WriteAllText(Path.Combine(_dir, "ds_z3.json"), """{"zero_optimization": {"stage": 3}}""");
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.FromPairs([new("zero_stage", "1"), new("deepspeed", "ds_z3.json")], null, p => File.ReadAllText(Path.Combine(_dir, p))));
        var e = Assert.Single(ex.Errors);
        Assert.Equal("zero_stage", e.Field);
        Assert.Contains("ZeRO stage 3", e.Message);
        Assert.Equal(3, JobSpecParser.FromPairs([new("zero_stage", "3"), new("deepspeed", "ds_z3.json")], null, p => File.ReadAllText(Path.Combine(_dir, p))).ZeroStage);
    }

    [Fact]
    public void FromPairs_DeepSpeedFileMissingOrBroken_NamesTheKey()
    {
        File.WriteAllText(Path.Combine(_dir, "bad.json"), "{ not json");
        string Read(string p) => File.ReadAllText(Path.Combine(_dir, p));
        Assert.Equal("deepspeed", Assert.Single(Assert.Throws<JobSpecException>(() => JobSpecParser.FromPairs([new("deepspeed", "none.json")], null, Read)).Errors).Field);
        Assert.Contains("not valid JSON", Assert.Single(Assert.Throws<JobSpecException>(() => JobSpecParser.FromPairs([new("deepspeed", "bad.json")], null, Read)).Errors).Message);
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "LongSeqService.sln"))) return d.FullName;
        throw new InvalidOperationException("no LongSeqService.sln above " + AppContext.BaseDirectory);
    }
}
