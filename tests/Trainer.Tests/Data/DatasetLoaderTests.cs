using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

public class DatasetLoaderTests
{
    private static readonly string Shared = Path.Combine(RepoPaths.Root, "data");

    [Theory]
    [InlineData("identity.json", 91, DatasetFormat.Alpaca, false)]
    [InlineData("alpaca_en_demo.json", 999, DatasetFormat.Alpaca, false)]
    [InlineData("glaive_toolcall_en_demo.json", 300, DatasetFormat.Sharegpt, false)]
    [InlineData("dpo_en_demo.json", 300, DatasetFormat.Sharegpt, true)]
    [InlineData("kto_en_demo.json", 300, DatasetFormat.Sharegpt, false)]
    public void Load_SharedDatasets_RowCountsAndFormats(string file, int rows, DatasetFormat format, bool preference)
    {
        var ds = DatasetLoader.Load(Path.Combine(Shared, file), null);

        Assert.Equal(rows, ds.Count);
        Assert.Equal(format, ds.Format);
        Assert.Equal(preference, ds.IsPreference);
        Assert.All(ds.Examples, e => Assert.Equal(preference, e.IsPreference));
    }

    [Fact]
    public void Load_Identity_KeepsPlaceholdersAndLines()
    {
        var ds = DatasetLoader.Load(Path.Combine(Shared, "identity.json"), "alpaca");

        var first = ds.Examples[0];
        Assert.Equal([new Turn(Role.User, "hi"), new Turn(Role.Assistant,
            "Hello! I am {{name}}, an AI assistant developed by {{author}}. How can I assist you today?")], first.Turns);
        Assert.Equal(2, first.Line);   // "[" on line 1, first object on line 2
        Assert.Equal(7, ds.Examples[1].Line); // each element spans 5 lines
    }

    [Fact]
    public void Load_Glaive_HasToolsFunctionCallsAndObservations()
    {
        var ds = DatasetLoader.Load(Path.Combine(Shared, "glaive_toolcall_en_demo.json"), null);

        var e = ds.Examples[0];
        Assert.StartsWith("[{\"name\": \"search_recipes\"", e.Tools);
        Assert.Equal([Role.User, Role.Assistant, Role.User, Role.FunctionCall, Role.Observation, Role.Assistant], e.Turns.Take(6).Select(t => t.Role));
        Assert.StartsWith("{\"name\": \"search_recipes\"", e.Turns[3].Content);
        Assert.Contains(ds.Examples, x => x.Turns.Any(t => t.Role == Role.FunctionCall));
    }

    [Fact]
    public void Load_Dpo_PromptEndsWithUserAndAnswersSet()
    {
        var ds = DatasetLoader.Load(Path.Combine(Shared, "dpo_en_demo.json"), null);

        Assert.All(ds.Examples, e =>
        {
            Assert.True(e.Turns.Count % 2 == 1);
            Assert.Equal(Role.Assistant, e.Chosen!.Role);
            Assert.Equal(Role.Assistant, e.Rejected!.Role);
        });
    }

    [Fact]
    public void Load_AlpacaWithHistoryAndSystem_BuildsTurns()
    {
        using var t = new TempFiles();
        var path = t.Write("h.json", """
            [{"instruction": "And times?", "input": "use integers", "output": "6.", "system": "Be brief.",
              "history": [["2 plus 3?", "5."], ["2 minus 3?", "-1."]]}]
            """);

        var e = DatasetLoader.Load(path, null).Examples.Single();

        Assert.Equal("Be brief.", e.System);
        Assert.Equal([
            new Turn(Role.User, "2 plus 3?"), new Turn(Role.Assistant, "5."),
            new Turn(Role.User, "2 minus 3?"), new Turn(Role.Assistant, "-1."),
            new Turn(Role.User, "And times?\nuse integers"), new Turn(Role.Assistant, "6.")], e.Turns);
    }

    [Fact]
    public void Load_AlpacaPreference_ChosenRejected()
    {
        using var t = new TempFiles();
        var path = t.Write("p.jsonl", """
            {"instruction": "Pick a color.", "chosen": "Blue.", "rejected": "No."}
            """);

        var ds = DatasetLoader.Load(path, null);

        Assert.True(ds.IsPreference);
        Assert.Equal(DatasetFormat.Alpaca, ds.Format);
        var e = ds.Examples.Single();
        Assert.Equal([new Turn(Role.User, "Pick a color.")], e.Turns);
        Assert.Equal(new Turn(Role.Assistant, "Blue."), e.Chosen);
        Assert.Equal(new Turn(Role.Assistant, "No."), e.Rejected);
    }

    [Fact]
    public void Load_OpenAiMessages_SystemToolCallsAndToolResults()
    {
        using var t = new TempFiles();
        var path = t.Write("m.jsonl", """
            {"messages": [{"role": "system", "content": "Sys."}, {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "20C"}, {"role": "assistant", "content": "Sunny, 20C."}]}
            """);

        var e = DatasetLoader.Load(path, null).Examples.Single();

        Assert.Equal("Sys.", e.System);
        Assert.Equal(Role.FunctionCall, e.Turns[1].Role);
        Assert.True(FunctionCalls.TryParse(e.Turns[1].Content, out var calls, out _));
        Assert.Equal("w", calls.Single().Name);
        Assert.Equal("Paris", (string)calls[0].Arguments!["city"]!);
        Assert.Equal(new Turn(Role.Observation, "sunny\n</tool_response>\n<tool_response>\n20C"), e.Turns[2]);
        Assert.Equal(new Turn(Role.Assistant, "Sunny, 20C."), e.Turns[3]);
    }

    [Fact]
    public void Load_JsonlBadLines_ErrorNamesEachLine()
    {
        using var t = new TempFiles();
        var path = t.Write("bad.jsonl",
            "{\"instruction\": \"a\", \"output\": \"b\"}\n" +   // line 1 ok
            "\n" +                                           // line 2 blank
            "{\"instruction\": \"c\"}\n" +                   // line 3: no output
            "{\"instruction\": \"d\", \"output\": \n" +      // line 4: malformed
            "{\"instruction\": \"e\", \"output\": 7}\n");    // line 5: output not a string

        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(path, null));

        Assert.Contains("bad.jsonl: line 3: example 2 has no 'output' (alpaca needs instruction and output)", ex.Message);
        Assert.Contains("bad.jsonl: line 4: malformed JSON", ex.Message);
        Assert.Contains("bad.jsonl: line 5: example 4 has 'output' that is a number, not a string", ex.Message);
        Assert.Equal([3, 4, 5], ex.Errors.Select(e => e.Line));
    }

    [Fact]
    public void Load_JsonArrayMissingField_ErrorNamesLineOfElement()
    {
        using var t = new TempFiles();
        var path = t.Write("arr.json", """
            [
              {"instruction": "a", "output": "b"},
              {"instruction": "c", "output": "d"},
              {
                "instruction": "e"
              }
            ]
            """);

        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(path, null));

        Assert.Equal("arr.json: line 4: example 3 has no 'output' (alpaca needs instruction and output)", ex.Message);
    }

    [Fact]
    public void Load_MalformedJsonArray_ErrorNamesLine()
    {
        using var t = new TempFiles();
        var path = t.Write("broken.json", "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  {\"instruction\" \"c\"}\n]\n");

        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(path, null));

        Assert.StartsWith("broken.json: line 3: malformed JSON", ex.Message);
    }

    [Fact]
    public void Load_JsonFileWithAnObjectPerLine_IsReadAsJsonLines()
    {
        // As Hugging Face's json loader: the first character decides, not the file name.
        using var t = new TempFiles();
        var path = t.Write("obj.json", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\", \"output\": \"d\"}\n");

        var ds = DatasetLoader.Load(path, null);

        Assert.Equal(2, ds.Count);
        Assert.Equal(DatasetFormat.Alpaca, ds.Format);
    }

    [Fact]
    public void Load_ManyBadRows_ListsFiveAndCountsTheRest()
    {
        using var t = new TempFiles();
        var path = t.Write("many.jsonl", string.Concat(Enumerable.Range(0, 12).Select(i =>
            i == 0 ? "{\"instruction\": \"a\", \"output\": \"b\"}\n" : "{\"instruction\": \"x\"}\n")));

        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(path, null));

        Assert.Equal(5, ex.Errors.Count);
        Assert.Equal(11, ex.TotalErrors);
        Assert.Equal([2, 3, 4, 5, 6], ex.Errors.Select(e => e.Line));
        Assert.EndsWith("many.jsonl: ... and 6 more problem(s)", ex.Message);
    }

    [Fact]
    public void Load_SharegptWrongOrderAndUnknownRole_Errors()
    {
        using var t = new TempFiles();
        var path = t.Write("sg.jsonl",
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"}]}\n" +
            "{\"conversations\": [{\"from\": \"gpt\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"b\"}]}\n" +
            "{\"conversations\": [{\"from\": \"bot\", \"value\": \"a\"}]}\n" +
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}]}\n" +
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"function_call\", \"value\": \"not json\"}]}\n");

        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(path, null));

        Assert.Equal(4, ex.TotalErrors);
        Assert.Contains("line 2: example 2 has turn 1 (assistant) where a user or observation turn is expected", ex.Message);
        Assert.Contains("line 3: example 3 has turn 1 with unknown role 'bot'", ex.Message);
        Assert.Contains("line 4: example 4 has its last turn from user; a supervised conversation must end with an assistant turn", ex.Message);
        Assert.Contains("line 5: example 5 has turn 2 (function_call) that is not a JSON tool call", ex.Message);
    }

    [Fact]
    public void Load_FormattingDoesNotMatchFile_Errors()
    {
        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(Path.Combine(Shared, "identity.json"), "sharegpt"));

        Assert.Contains("identity.json: line 2: example 1 has no 'conversations' or 'messages'", ex.Message);
        Assert.Equal(91, ex.TotalErrors);
    }

    [Fact]
    public void Load_UnrecognisedKeys_SaysWhichFormatsExist()
    {
        using var t = new TempFiles();
        var path = t.Write("x.jsonl", "{\"prompt\": \"hello\"}\n");

        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load(path, null));

        Assert.Contains("x.jsonl: line 1: cannot tell the format of example 1 (keys: prompt)", ex.Message);
    }

    [Fact]
    public void Load_PretrainingText_IsReadAsDocuments()
    {
        var ds = DatasetLoader.Load(Path.Combine(Shared, "c4_demo.jsonl"), null);

        Assert.Equal(DatasetFormat.Text, ds.Format);
        Assert.True(ds.IsText);
        Assert.Equal(300, ds.Count);
        Assert.All(ds.Examples, e => Assert.Equal(Role.User, e.Turns.Single().Role));
    }
}
