namespace LongSeqService.Shared.Data;

/// <summary>Who speaks a turn, in LLaMA-Factory's terms.</summary>
public enum Role
{
    User,
    Assistant,
    /// <summary>The assistant calling a tool: JSON <c>{"name": ..., "arguments": {...}}</c> or a list of those.</summary>
    FunctionCall,
    /// <summary>A tool's result, given back to the model.</summary>
    Observation,
}

public sealed record Turn(Role Role, string Content)
{
    /// <summary>True for turns the model writes (and learns): assistant answers and function calls.</summary>
    public bool IsModelTurn => Role is Role.Assistant or Role.FunctionCall;
}

/// <summary>
/// One training example in a format-independent shape. <see cref="Turns"/> alternate prompt turns
/// (user / observation) and model turns (assistant / function_call), starting with a prompt turn.
/// Supervised examples end with a model turn. Preference examples end with a prompt turn and carry the
/// two candidate answers in <see cref="Chosen"/> and <see cref="Rejected"/>.
/// </summary>
/// <param name="System">System prompt; empty when the example has none (the template may supply a default).</param>
/// <param name="Tools">Tool definitions as a JSON array string; empty when none.</param>
/// <param name="Line">1-based line in the source file where the example starts.</param>
public sealed record Example(
    string System,
    string Tools,
    IReadOnlyList<Turn> Turns,
    Turn? Chosen = null,
    Turn? Rejected = null,
    int Line = 0)
{
    public bool IsPreference => Chosen is not null;
}

/// <summary>A file's format. <see cref="Text"/>: one <c>text</c> per example, pre-training documents (stage pt).</summary>
public enum DatasetFormat { Alpaca, Sharegpt, Text }

public sealed record LoadedDataset(string Path, DatasetFormat Format, bool IsPreference, IReadOnlyList<Example> Examples)
{
    public int Count => Examples.Count;

    /// <summary>Examples are documents for pre-training (one user turn of raw text each), not conversations.</summary>
    public bool IsText { get; init; }
}
