using LongSeqService.Shared.Data;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>dataset: names looked up in dataset_dir/dataset_info.json as LLaMA-Factory's data/parser.py does.</summary>
public class DatasetInfoTests
{
    private static readonly string DataDir = Path.Combine(RepoPaths.Root, "data");

    private static List<DatasetSource> Resolve(string list, string? dir = null) => DatasetInfo.Resolve(list, RepoPaths.Root, dir ?? DataDir);

    [Fact]
    public void Resolve_TwoNames_ConcatenatesInOrder()
    {
        var sources = Resolve("identity, alpaca_en_demo");

        Assert.Equal(["identity", "alpaca_en_demo"], sources.Select(s => s.Name));
        Assert.Equal([91, 999], sources.Select(s => DatasetLoader.Load(s, pretrain: false).Count));
        Assert.All(sources, s => Assert.Equal("alpaca", s.Formatting));
    }

    /// <summary>The shipped entries (LLaMA-Factory's own) read every demo file, and the explicit columns and
    /// tags give the same examples as reading the file by path with its keys detected.</summary>
    [Theory]
    [InlineData("identity.json", "identity", false)]
    [InlineData("glaive_toolcall_en_demo.json", "glaive_toolcall_en_demo", false)]
    [InlineData("dpo_en_demo.json", "dpo_en_demo", true)]
    [InlineData("kto_en_demo.json", "kto_en_demo", false)]
    public void Load_ShippedEntry_SameExamplesAsDetected(string file, string name, bool preference)
    {
        var byName = DatasetLoader.Load(Resolve(name).Single(), pretrain: false);
        var byPath = DatasetLoader.Load(RepoPaths.Data(file), null);

        Assert.Equal(preference, byName.IsPreference);
        Assert.Equal(byPath.Count, byName.Count);
        Assert.Equal(byPath.Examples.Select(Describe), byName.Examples.Select(Describe));
    }

    [Fact]
    public void Load_C4Demo_PromptMappedToText_AreDocuments()
    {
        var c4 = DatasetLoader.Load(Resolve("c4_demo").Single(), pretrain: true);
        var firstLine = System.Text.Json.JsonDocument.Parse(File.ReadLines(RepoPaths.Data("c4_demo.jsonl")).First()).RootElement.GetProperty("text").GetString();

        Assert.Equal(300, c4.Count);
        Assert.True(c4.IsText);
        Assert.Equal(firstLine, c4.Examples[0].Turns.Single().Content);
    }

    [Fact]
    public void Resolve_UnknownName_ListsTheDefinedNames()
    {
        var e = Assert.Throws<DatasetNameException>(() => Resolve("identity,alpaca_zh_demo"));

        Assert.Contains("'alpaca_zh_demo' is not defined in", e.Message);
        Assert.Contains("identity, alpaca_en_demo, glaive_toolcall_en_demo, dpo_en_demo, kto_en_demo, c4_demo", e.Message);
    }

    [Fact]
    public void Resolve_PlainPathAndMissingPath_AsBefore()
    {
        var source = Resolve("data/identity.json").Single();
        Assert.True(source.Columns.IsDetected);
        Assert.Equal(91, DatasetLoader.Load(source, pretrain: false).Count);

        var e = Assert.Throws<DatasetNameException>(() => Resolve("data/missing.json"));
        Assert.Contains("missing.json' not found", e.Message);
    }

    [Fact]
    public void Resolve_NoDatasetInfo_SaysWhereItLooked()
    {
        using var t = new TempFiles();
        var e = Assert.Throws<DatasetNameException>(() => Resolve("identity", t.Dir));
        Assert.Contains($"there is no {Path.Combine(t.Dir, "dataset_info.json")}", e.Message);
    }

    [Fact]
    public void Load_ColumnMappedToMissingColumn_NamesLineAndColumn()
    {
        using var t = new TempFiles();
        t.Write("qa.jsonl", "{\"question\": \"a?\", \"answer\": \"b\"}\n{\"question\": \"c?\", \"reply\": \"d\"}\n");
        t.Write("dataset_info.json", """{"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "question", "response": "answer"}}}""");

        var e = Assert.Throws<DatasetException>(() => DatasetLoader.Load(Resolve("qa", t.Dir).Single(), pretrain: false));

        Assert.Equal("qa.jsonl: line 2: example 2 has no 'answer' (dataset_info.json maps response to 'answer')", e.Message);
    }

    [Fact]
    public void Load_CustomColumnsAndTags_MapRolesSystemAndHistory()
    {
        using var t = new TempFiles();
        t.Write("chat.json", """
            [{"dialog": [{"speaker": "sys", "says": "Be brief."}, {"speaker": "u", "says": "Hi"}, {"speaker": "a", "says": "Hello"},
                         {"speaker": "u", "says": "Bye"}, {"speaker": "a", "says": "Bye!"}]}]
            """);
        t.Write("alp.json", """[{"q": "Add", "ctx": "1+1", "a": "2", "prev": [["Hi", "Hello"]], "sp": "Math."}]""");
        t.Write("dataset_info.json", """
            {"chat": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "dialog"},
                      "tags": {"role_tag": "speaker", "content_tag": "says", "user_tag": "u", "assistant_tag": "a", "system_tag": "sys"}},
             "alp": {"file_name": "alp.json", "columns": {"prompt": "q", "query": "ctx", "response": "a", "history": "prev", "system": "sp"}}}
            """);

        var chat = DatasetLoader.Load(Resolve("chat", t.Dir).Single(), pretrain: false).Examples.Single();
        var alp = DatasetLoader.Load(Resolve("alp", t.Dir).Single(), pretrain: false).Examples.Single();

        Assert.Equal("Be brief.|User:Hi|Assistant:Hello|User:Bye|Assistant:Bye!", Describe(chat));
        Assert.Equal("Math.|User:Hi|Assistant:Hello|User:Add\n1+1|Assistant:2", Describe(alp));
    }

    [Fact]
    public void Load_TagsGiven_DefaultVocabularyIsRefusedWithTheExpectedTags()
    {
        using var t = new TempFiles();
        t.Write("c.json", """[{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}]""");
        t.Write("dataset_info.json", """{"c": {"file_name": "c.json", "formatting": "sharegpt", "tags": {"role_tag": "role", "content_tag": "content"}}}""");

        var e = Assert.Throws<DatasetException>(() => DatasetLoader.Load(Resolve("c", t.Dir).Single(), pretrain: false));

        Assert.Equal("c.json: line 1: example 1 has turn 1 with no 'role' (dataset_info.json maps role_tag to 'role')", e.Message);
    }

    [Theory]
    [InlineData("""{"x": {"hf_hub_url": "llamafactory/alpaca_en"}}""", "'x': is a download (hf_hub_url)")]
    [InlineData("""{"x": {"file_name": "x.json", "columns": {"images": "images"}}}""", "'x': columns.images: images, videos and audios are not supported")]
    [InlineData("""{"x": {"file_name": "x.json", "columns": {"answer": "a"}}}""", "'x': columns.answer is not one of prompt, query, response")]
    [InlineData("""{"x": {"file_name": "x.json", "formatting": "csv"}}""", "'x': formatting 'csv' is not one of alpaca, sharegpt, openai")]
    [InlineData("""{"x": {"file_name": "nope.json"}}""", "'x': file '")]
    public void Resolve_BadEntry_NamesEntryAndKey(string info, string expected)
    {
        using var t = new TempFiles();
        t.Write("x.json", "[]");
        t.Write("dataset_info.json", info);

        var e = Assert.Throws<DatasetException>(() => Resolve("x", t.Dir));

        Assert.StartsWith("dataset_info.json: " + expected, e.Message);
    }

    private static string Describe(Example e) =>
        string.Join("|", new[] { e.System }.Concat(e.Turns.Select(x => $"{x.Role}:{x.Content}"))
            .Concat(e.Chosen is { } c ? [$"chosen {c.Role}:{c.Content}", $"rejected {e.Rejected!.Role}:{e.Rejected.Content}"] : []))
        + (e.Tools.Length > 0 ? "|tools:" + e.Tools : "");
}
