using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Tests;

public class JobSpecValidatorTests
{
    private static readonly JobSpec Valid = new() { ModelNameOrPath = "builtin:tiny-qwen2", Dataset = "d.json", CutoffLen = 256 };
    private static ModelShape Qwen => ModelShape.Builtins["builtin:tiny-qwen2"];

    [Fact]
    public void Validate_DefaultsWithModelAndDataset_HasNoErrors() => Assert.Empty(JobSpecValidator.Validate(Valid, Qwen));

    [Fact]
    public void Validate_UlyssesHeadsNotDivisible_SuggestsHybridAndSizesThatWork()
    {
        var shape = Qwen with { NumAttentionHeads = 14, NumKeyValueHeads = 2 };
        var errors = JobSpecValidator.Validate(Valid with { SequenceParallelSize = 4, SequenceParallelMode = SequenceParallelMode.Ulysses }, shape);
        var e = Assert.Single(errors);
        Assert.Equal("sequence_parallel_mode", e.Field);
        Assert.Contains("'hybrid'", e.Message);
        Assert.Contains("sequence_parallel_size 2, 7 or 14", e.Message);
    }

    [Fact]
    public void Validate_HybridDegreeNotDividingHeads_NamesUlyssesDegree()
    {
        var errors = JobSpecValidator.Validate(Valid with { SequenceParallelSize = 4, SequenceParallelMode = SequenceParallelMode.Hybrid, UlyssesDegree = 4 }, Qwen);
        Assert.Equal("ulysses_degree", Assert.Single(errors).Field);
        Assert.Equal(2, SequenceParallelRules.AutoUlyssesDegree(4, 6));
    }

    [Theory]
    [InlineData("stage", "ppo")]
    [InlineData("lr_scheduler_type", "cosin")]
    [InlineData("sequence_parallel_mode", "zigzag")]
    [InlineData("template", "qwen9")]
    public void FromPairs_ValueOutsideChoices_NamesFieldAndChoices(string field, string value)
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.FromPairs([new(field, value)]));
        var e = Assert.Single(ex.Errors);
        Assert.Equal(field, e.Field);
        Assert.Contains("is not one of", e.Message);
    }

    [Theory]
    [InlineData(-1, "must be 0 to 3")]
    [InlineData(4, "must be 0 to 3")]
    public void Validate_ZeroStageOutOfRange_NamesZeroStageAndTheStagesThatAre(int stage, string expected)
    {
        var e = Assert.Single(JobSpecValidator.Validate(Valid with { ZeroStage = stage }, Qwen));
        Assert.Equal("zero_stage", e.Field);
        Assert.Contains(expected, e.Message);
        Assert.Empty(JobSpecValidator.Validate(Valid with { ZeroStage = 3, SequenceParallelSize = 2, DataParallelSize = 2 }, Qwen));
    }

    [Fact]
    public void Validate_SpecBuiltInCode_MeetsTheDeclaredBounds()
    {
        var errors = JobSpecValidator.Validate(Valid with { LearningRate = 1e308, ValSize = double.PositiveInfinity, CutoffLen = 0, Template = "nope", ZeroStage = 4 }, Qwen);
        Assert.Equal(["cutoff_len", "learning_rate", "template", "val_size", "zero_stage"], errors.Select(e => e.Field).Distinct().Order());
    }

    [Fact]
    public void Validate_KeysOfTheOtherParts_AreAcceptedNowThatTheyAreBuilt()
    {
        Assert.Empty(JobSpecValidator.Validate(Valid with { Stage = Stage.Pt, DatasetDir = "data", EvalDataset = "a", LossChunkTokens = 64, Packing = true }, Qwen));
        Assert.Equal("val_size", Assert.Single(JobSpecValidator.Validate(Valid with { EvalDataset = "a", ValSize = 0.1 }, Qwen)).Field);
        Assert.Equal("packing", Assert.Single(JobSpecValidator.Validate(Valid with { Stage = Stage.Dpo, Packing = true }, Qwen)).Field);
    }

    [Fact]
    public void Validate_ValSizeFractionOrWholeCount_RefusesMixed()
    {
        Assert.Empty(JobSpecValidator.Validate(Valid with { ValSize = 0.1 }, Qwen));
        Assert.Empty(JobSpecValidator.Validate(Valid with { ValSize = 20 }, Qwen));
        Assert.Equal("val_size", Assert.Single(JobSpecValidator.Validate(Valid with { ValSize = 2.5 }, Qwen)).Field);
    }

    [Fact]
    public void Validate_CutoffShorterThanTwoRanksPerGroup_IsRefused()
    {
        var errors = JobSpecValidator.Validate(Valid with { SequenceParallelSize = 8, CutoffLen = 10 }, Qwen);
        Assert.Contains(errors, e => e.Field == "cutoff_len");
    }

    [Fact]
    public void TryResolve_UnknownBuiltinAndMissingDirectory_ExplainWhatExists()
    {
        Assert.Null(ModelShape.TryResolve("builtin:tiny-gpt", out var e1));
        Assert.Contains("builtin:tiny-llama", e1);
        Assert.Null(ModelShape.TryResolve("/nonexistent/model", out var e2));
        Assert.Contains("neither", e2);
    }

    [Fact]
    public void Suggest_FarFromEveryKey_ReturnsNull() => Assert.Null(JobSpecKeys.Suggest("zzzzzzzzzzzzzz"));
}
