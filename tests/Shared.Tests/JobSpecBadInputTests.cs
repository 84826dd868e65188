using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Tests;

/// <summary>The job-body inputs of issue 9 at the parser: each refused with the key named, never echoed whole.</summary>
public class JobSpecBadInputTests
{
    private static JobSpecException Refused(string json) =>
        Assert.Throws<JobSpecException>(() => JobSpecParser.FromJson(JsonNode.Parse(json)!.AsObject()));

    public static TheoryData<string> NonNullableKeys() => [.. JobSpecKeys.All.Where(k => !k.Nullable).Select(k => k.Name)];

    [Theory]
    [MemberData(nameof(NonNullableKeys))]
    public void FromJson_NullForNonNullableKey_NamesTheKey(string key)
    {
        var e = Assert.Single(Refused($$"""{"{{key}}": null}""").Errors);
        Assert.Equal(key, e.Field);
        Assert.Contains("cannot be null", e.Message);
    }

    [Fact]
    public void FromJson_NullForNullableKey_MeansTheDefault()
    {
        var spec = JobSpecParser.FromJson(JsonNode.Parse("""{"max_samples": null, "template": null, "rope_theta": null}""")!.AsObject());
        Assert.Equal((null, null, null), (spec.MaxSamples, spec.Template, spec.RopeTheta));
    }

    [Fact]
    public void NonNullableKeys_AreMostOfTheSpec() => Assert.True(NonNullableKeys().Count >= 29, "issue 9 counted 29 non-nullable keys");

    [Theory]
    [InlineData("learning_rate", "1e308")]
    [InlineData("val_size", "1e308")]
    [InlineData("learning_rate", "0")]
    [InlineData("rope_theta", "-1")]
    [InlineData("warmup_ratio", "2")]
    [InlineData("cutoff_len", "1e12")]
    [InlineData("sequence_parallel_size", "0")]
    [InlineData("pref_beta", "1e300")]
    [InlineData("num_train_epochs", "1e300")]
    [InlineData("zero_stage", "4")]
    [InlineData("seed", "-5")]
    public void FromJson_NumberOutsideDeclaredBounds_NamesTheFieldAndTheRange(string key, string value)
    {
        var e = Assert.Single(Refused($$"""{"{{key}}": {{value}}}""").Errors);
        Assert.Equal(key, e.Field);
        Assert.StartsWith("must be ", e.Message);
        JobSpecKeys.TryGet(key, out var k);
        Assert.Contains(k.Range, e.Message);
    }

    [Fact]
    public void EveryNumberKey_HasFiniteBounds() =>
        Assert.All(JobSpecKeys.All.Where(k => k.Type is SpecType.Integer or SpecType.Number),
            k => Assert.True(k.Min is { } lo && k.Max is { } hi && double.IsFinite(lo) && double.IsFinite(hi) && lo < hi, k.Name));

    [Fact]
    public void FromJson_StringOverItsLength_IsRefusedWithoutEchoingIt()
    {
        var path = new string('a', 100_000);
        var e = Assert.Single(Refused($$"""{"model_name_or_path": "{{path}}"}""").Errors);
        Assert.Equal("model_name_or_path", e.Field);
        Assert.Contains("longer than 1024 characters", e.Message);
        Assert.True(e.Message.Length < 200, e.Message);
    }

    [Fact]
    public void FromJson_HugeUnknownKeyAndValue_AreShortenedAndNotSearched()
    {
        var key = new string('k', 20_000_000);
        Assert.Null(JobSpecKeys.Suggest(key)); // longer than any key could be by a typo: no edit-distance search at all
        var e = Assert.Single(Refused($$"""{"{{key}}": 1}""").Errors);
        Assert.True(e.Field.Length < 100 && e.Message.Length < 200, $"{e.Field.Length} / {e.Message.Length}");

        var stage = Assert.Single(Refused($$"""{"stage": "{{new string('s', 1_000_000)}}"}""").Errors);
        Assert.True(stage.Message.Length < 200, stage.Message);
    }

    [Fact]
    public void FromJson_ManyUnknownKeys_StopsAtTheLimit()
    {
        var body = new JsonObject();
        for (int i = 0; i < 10_000; i++) body[$"key_{i}"] = i;
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.FromJson(body));
        Assert.Equal(JobSpecParser.MaxErrors + 1, ex.Errors.Count);
    }

    [Fact]
    public void FromJson_NulInsideAPath_IsRefused() =>
        Assert.Equal("dataset", Assert.Single(Refused("""{"dataset": "a\u0000b"}""").Errors).Field);

    [Fact]
    public void FromJson_DeepSpeedFromTheApi_IsRefusedInFavourOfZeroStage()
    {
        var e = Assert.Single(Refused("""{"deepspeed": "/etc/passwd"}""").Errors);
        Assert.Equal("deepspeed", e.Field);
        Assert.Contains("zero_stage", e.Message);
    }
}
