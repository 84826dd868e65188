namespace LongSeqService.Shared.Data;

/// <summary>
/// Which column of a dataset holds what, and which words sharegpt turns use for their roles: the
/// <c>columns</c> and <c>tags</c> of a <c>dataset_info.json</c> entry, with LLaMA-Factory's defaults
/// (its <c>DatasetAttr</c>). <see cref="Detected"/> is the reading of a file given by path, with no
/// entry: the keys of LLaMA-Factory's file formats are recognised (alpaca's system/history/tools,
/// sharegpt's conversations or messages, from/value or role/content turns).
/// </summary>
public sealed record DatasetColumns
{
    // alpaca
    public string? Prompt { get; init; } = "instruction";
    public string? Query { get; init; } = "input";
    public string? Response { get; init; } = "output";
    public string? History { get; init; }
    // sharegpt
    public string? Messages { get; init; } = "conversations";
    // both
    public string? System { get; init; }
    public string? Tools { get; init; }
    public string? Chosen { get; init; }
    public string? Rejected { get; init; }
    /// <summary>KTO's boolean label column: read by LLaMA-Factory's kto stage only; no stage here uses it.</summary>
    public string? KtoTag { get; init; }

    // sharegpt tags
    public string RoleTag { get; init; } = "from";
    public string ContentTag { get; init; } = "value";
    public string UserTag { get; init; } = "human";
    public string AssistantTag { get; init; } = "gpt";
    public string ObservationTag { get; init; } = "observation";
    public string FunctionTag { get; init; } = "function_call";
    public string SystemTag { get; init; } = "system";

    /// <summary>True when these columns come from no dataset_info.json entry: keys are detected.</summary>
    public bool IsDetected { get; private init; }

    /// <summary>The columns of a file given by path (and of an upload).</summary>
    public static readonly DatasetColumns Detected = new()
    {
        History = "history", System = "system", Tools = "tools", Chosen = "chosen", Rejected = "rejected", IsDetected = true,
    };

    /// <summary>Pre-training text of a file given by path: one <c>text</c> column (LLaMA-Factory's c4_demo maps <c>prompt: text</c>).</summary>
    public const string TextColumn = "text";

    /// <summary>The <c>columns</c> keys LLaMA-Factory reads, in its order; the multimodal ones are refused (no vision models).</summary>
    public static readonly string[] ColumnKeys = ["prompt", "query", "response", "history", "messages", "system", "tools", "chosen", "rejected", "kto_tag"];
    public static readonly string[] MultimodalKeys = ["images", "videos", "audios"];
    public static readonly string[] TagKeys = ["role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"];

    /// <summary>These columns with one <c>columns</c> or <c>tags</c> key of a dataset_info.json entry set.</summary>
    public DatasetColumns With(string key, string? value) => key switch
    {
        "prompt" => this with { Prompt = value },
        "query" => this with { Query = value },
        "response" => this with { Response = value },
        "history" => this with { History = value },
        "messages" => this with { Messages = value },
        "system" => this with { System = value },
        "tools" => this with { Tools = value },
        "chosen" => this with { Chosen = value },
        "rejected" => this with { Rejected = value },
        "kto_tag" => this with { KtoTag = value },
        "role_tag" => this with { RoleTag = value ?? RoleTag },
        "content_tag" => this with { ContentTag = value ?? ContentTag },
        "user_tag" => this with { UserTag = value ?? UserTag },
        "assistant_tag" => this with { AssistantTag = value ?? AssistantTag },
        "observation_tag" => this with { ObservationTag = value ?? ObservationTag },
        "function_tag" => this with { FunctionTag = value ?? FunctionTag },
        "system_tag" => this with { SystemTag = value ?? SystemTag },
        _ => throw new ArgumentException($"'{key}' is not a column or tag key", nameof(key)),
    };

    /// <summary>How a missing column is explained: the format's need for a detected file, the mapping for an entry.</summary>
    internal string Origin(string key, string column) =>
        IsDetected ? "" : $" (dataset_info.json maps {key} to '{column}')";
}

/// <summary>
/// One dataset to read: a file with its formatting, whether it is preference (ranking) data, and its
/// columns. <see cref="Name"/> is the dataset_info.json name or the file name, for messages.
/// </summary>
/// <param name="Formatting">alpaca, sharegpt (openai reads as sharegpt) or null to detect from the first example.</param>
/// <param name="Ranking">Preference data (chosen/rejected) or not; null to detect from the first example.</param>
public sealed record DatasetSource(string Name, string Path, string? Formatting, bool? Ranking, DatasetColumns Columns)
{
    /// <summary>A file given by path: everything detected (the formatting key may still name the format).</summary>
    public static DatasetSource File(string path, string? formatting = null) =>
        new(System.IO.Path.GetFileName(path), path, formatting, null, DatasetColumns.Detected);
}
