using System.Text;
using System.Text.Json.Nodes;
using LongSeqService.Api.OpenAi;
using LongSeqService.Shared.Datasets;

namespace LongSeqService.Service.Tests;

/// <summary>OpenAI's fine-tuning JSONL into our sharegpt lines, checked then by the same dataset check as any upload.</summary>
public sealed class OpenAiJsonlTests
{
    private static byte[] Lines(params string[] lines) => Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n");

    private static List<JsonObject> Rows(OpenAiJsonl.Result r) =>
        Encoding.UTF8.GetString(r.Bytes).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    [Fact]
    public void Convert_ChatLines_AreSharegptMessagesWithTextPartsJoined()
    {
        var r = OpenAiJsonl.Convert(Lines(
            """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "weight": 1}]}""",
            """{"messages": [{"role": "user", "content": [{"type": "text", "text": "Two "}, {"type": "text", "text": "parts"}]}, {"role": "assistant", "content": "ok"}]}"""));

        Assert.Equal(0, r.ErrorCount);
        Assert.False(r.IsPreference);
        var rows = Rows(r);
        Assert.Equal("Two parts", rows[1]["messages"]![0]!["content"]!.GetValue<string>());
        Assert.Null(rows[0]["messages"]![2]!["weight"]);
        var report = DatasetInspector.Inspect(r.Bytes, DatasetFormats.ShareGpt);
        Assert.True(report.IsValid, string.Join("; ", report.Errors));
        Assert.Equal((2, false), (report.Rows, report.IsPreference));
    }

    [Fact]
    public void Convert_PreferenceLines_BecomeChosenAndRejected()
    {
        var r = OpenAiJsonl.Convert(Lines(
            """{"input": {"messages": [{"role": "user", "content": "2+2?"}]}, "preferred_output": [{"role": "assistant", "content": "4"}], "non_preferred_output": [{"role": "assistant", "content": "5"}]}"""));

        Assert.Equal(0, r.ErrorCount);
        Assert.True(r.IsPreference);
        var row = Rows(r)[0];
        Assert.Equal("4", row["chosen"]!["content"]!.GetValue<string>());
        Assert.Equal("5", row["rejected"]!["content"]!.GetValue<string>());
        var report = DatasetInspector.Inspect(r.Bytes, DatasetFormats.ShareGpt);
        Assert.True(report.IsValid, string.Join("; ", report.Errors));
        Assert.True(report.IsPreference);
    }

    [Fact]
    public void Convert_BadLines_AreReportedByTheirLineNumber()
    {
        var r = OpenAiJsonl.Convert(Lines(
            """{"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}""",
            "",
            """{"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "user", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}""",
            """{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"""));

        Assert.Equal(2, r.ErrorCount);
        Assert.Equal([3, 4], r.Errors.Select(e => e.Line));
        Assert.Contains("preferred_output", r.Errors[0].Message);
        Assert.Contains("a file holds one kind", r.Errors[1].Message);
    }

    [Fact]
    public void Convert_WeightZeroAndMalformedJson_AreRefusedNamingTheLine()
    {
        var weight = OpenAiJsonl.Convert(Lines("""{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}"""));
        Assert.Equal(1, weight.Errors.Single().Line);
        Assert.Contains("weight 0", weight.Errors[0].Message);

        // Not JSON: passed on as it is, and the dataset check names the line in its own words.
        var broken = OpenAiJsonl.Convert(Lines("""{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}""", "{not json"));
        Assert.Equal(0, broken.ErrorCount);
        var report = DatasetInspector.Inspect(broken.Bytes, DatasetFormats.ShareGpt);
        Assert.Equal(2, report.Errors.Single().Line);
        Assert.Contains("malformed JSON", report.Errors[0].Message);
    }
}
