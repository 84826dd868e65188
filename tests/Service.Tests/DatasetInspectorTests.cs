using System.Text;
using LongSeqService.Shared.Datasets;

namespace LongSeqService.Service.Tests;

/// <summary>The dataset check against LLaMA-Factory's real example files and hand-made broken ones.
/// Row counts come from Python's json module over the same files.</summary>
public sealed class DatasetInspectorTests
{
    [Theory]
    [InlineData("identity.json", "alpaca", false, 91)]
    [InlineData("alpaca_en_demo.json", "alpaca", false, 999)]
    [InlineData("glaive_toolcall_en_demo.json", "sharegpt", false, 300)]
    [InlineData("dpo_en_demo.json", "sharegpt", true, 300)]
    [InlineData("kto_en_demo.json", "sharegpt", false, 300)]
    public void Inspect_RealExampleFile_DetectsFormatAndCountsRows(string file, string format, bool preference, int rows)
    {
        var report = DatasetInspector.Inspect(Data.File(file));
        Assert.True(report.IsValid, string.Join("; ", report.Errors));
        Assert.Equal(format, report.Format);
        Assert.Equal(preference, report.IsPreference);
        Assert.Equal(rows, report.Rows);
        Assert.NotNull(report.CharLength);
        Assert.True(report.CharLength!.Min <= report.CharLength.P50 && report.CharLength.P50 <= report.CharLength.Max);
    }

    [Fact]
    public void Inspect_PretrainingText_IsTextForStagePt()
    {
        var report = DatasetInspector.Inspect(Data.File("c4_demo.jsonl"));
        Assert.True(report.IsValid);
        Assert.Equal(DatasetFormats.Text, report.Format);
        Assert.Equal(300, report.Rows);
        Assert.False(report.IsPreference);
    }

    [Fact]
    public void Inspect_JsonLinesWithBadLines_NamesEachLine()
    {
        var text = """
            {"instruction": "a", "input": "", "output": "b"}
            {"instruction": "c", "output": "d"}
            {"instruction": "e", "output": 
            {"instruction": "f", "input": ""}

            {"instruction": "g", "output": "h", "history": [["q"]]}
            """;
        var report = DatasetInspector.Inspect(Encoding.UTF8.GetBytes(text));
        Assert.False(report.IsValid);
        Assert.Equal("alpaca", report.Format);
        Assert.Equal([3, 4, 6], report.Errors.Select(e => e.Line));
        Assert.Contains("malformed JSON", report.Errors[0].Message);
        Assert.Contains("has no 'output'", report.Errors[1].Message);
        Assert.Contains("history", report.Errors[2].Message);
        Assert.Equal(5, report.Rows);
    }

    [Fact]
    public void Inspect_JsonArrayWithBadElement_NamesTheLineWhereItStarts()
    {
        var text = "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  {\"instruction\": \"c\",\n   \"output\": 5},\n  {\"instruction\": \"d\", \"output\": \"e\"}\n]\n";
        var report = DatasetInspector.Inspect(Encoding.UTF8.GetBytes(text));
        var error = Assert.Single(report.Errors);
        Assert.Equal(3, error.Line);
        Assert.Contains("example 2 has 'output' that is a number, not a string", error.Message);
    }

    [Fact]
    public void Inspect_TruncatedArray_ReportsInvalidJson()
    {
        var bytes = File.ReadAllBytes(Data.File("identity.json"));
        var report = DatasetInspector.Inspect(bytes[..(bytes.Length / 2)]);
        Assert.False(report.IsValid);
        Assert.Contains(report.Errors, e => e.Message.Contains("JSON") || e.Message.Contains("not closed"));
    }

    [Fact]
    public void Inspect_ShareGptTurnsOutOfOrder_IsRefused()
    {
        var text = """
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
            {"conversations": [{"from": "gpt", "value": "yo"}, {"from": "human", "value": "hi"}]}
            {"conversations": [{"from": "human", "value": "hi"}]}
            {"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
            {"conversations": [{"from": "robot", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
            """;
        var report = DatasetInspector.Inspect(Encoding.UTF8.GetBytes(text));
        Assert.Equal([2, 3, 5], report.Errors.Select(e => e.Line));
        Assert.Contains("where a user or observation turn is expected", report.Errors[0].Message);
        Assert.Contains("must end with an assistant turn", report.Errors[1].Message);
        Assert.Contains("unknown role 'robot'", report.Errors[2].Message);
    }

    [Fact]
    public void Inspect_PreferenceRules_FollowLlamaFactory()
    {
        var ok = """{"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}""";
        var badAnswer = """{"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "human", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}""";
        var evenTurns = """{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "x"}], "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}""";
        var noPair = """{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "x"}]}""";
        var report = DatasetInspector.Inspect(Encoding.UTF8.GetBytes(string.Join("\n", ok, badAnswer, evenTurns, noPair)));
        Assert.True(report.IsPreference);
        Assert.Equal([2, 3, 4], report.Errors.Select(e => e.Line));
        Assert.Contains("'chosen' from user; it must be an assistant", report.Errors[0].Message);
        Assert.Contains("preference data ends with the user's turn", report.Errors[1].Message);
        Assert.Contains("preference data ends with the user's turn", report.Errors[2].Message);
    }

    [Fact]
    public void Inspect_AlpacaPreference_NeedsChosenAndRejectedStrings()
    {
        var text = """
            {"instruction": "q", "input": "", "chosen": "a", "rejected": "b"}
            {"instruction": "q", "chosen": "a", "rejected": ["b"]}
            """;
        var report = DatasetInspector.Inspect(Encoding.UTF8.GetBytes(text));
        Assert.True(report.IsPreference);
        var error = Assert.Single(report.Errors);
        Assert.Equal(2, error.Line);
        Assert.Contains("'rejected' that is a list, not a string", error.Message);
    }

    [Fact]
    public void Inspect_FormattingGivenButFileIsOther_IsRefused()
    {
        var report = DatasetInspector.Inspect(Data.File("identity.json"), "sharegpt");
        Assert.False(report.IsValid);
        Assert.Contains("has no 'conversations' or 'messages'", report.Errors[0].Message);
        Assert.Equal(91, report.ErrorCount);
        Assert.Equal(DatasetInspector.MaxReportedErrors, report.Errors.Count);
    }

    [Fact]
    public void Inspect_MixedFormats_IsRefusedAtTheFirstOddLine()
    {
        var text = "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n";
        var report = DatasetInspector.Inspect(Encoding.UTF8.GetBytes(text));
        Assert.Equal(2, Assert.Single(report.Errors).Line);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n ")]
    [InlineData("[]")]
    [InlineData("[1, 2]")]
    public void Inspect_EmptyOrNotExamples_IsRefused(string text)
    {
        Assert.False(DatasetInspector.Inspect(Encoding.UTF8.GetBytes(text)).IsValid);
    }

    [Fact]
    public void Inspect_WrongExtension_IsRefused()
    {
        var path = Path.Combine(Path.GetTempPath(), $"{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, "a,b\n");
        try { Assert.Contains(".csv", Assert.Single(DatasetInspector.Inspect(path).Errors).Message); }
        finally { File.Delete(path); }
    }
}
