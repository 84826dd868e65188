using System.Text.RegularExpressions;
using S = LongSeqService.Shared.Data.TemplateSlot;

namespace LongSeqService.Shared.Data;

/// <summary>
/// A chat template as LLaMA-Factory defines it (<c>src/llamafactory/data/template.py</c>): formatters for
/// each kind of turn, a prefix, a default system prompt and the tool format. Renders a conversation into
/// one token-id list per message, exactly as LLaMA-Factory's <c>Template._encode</c> does: the first
/// message carries prefix + system (+ tool definitions); every text element is encoded on its own with
/// no special tokens added; BOS/EOS slots become the tokenizer's ids. Llama 2 / Mistral fuse the system
/// prompt into the first user message (LLaMA-Factory's <c>Llama2Template</c>); reasoning templates (Qwen3)
/// handle the think block as its <c>ReasoningTemplate</c> does (<see cref="EncodeMultiTurn"/>).
/// </summary>
public sealed class ChatTemplate
{
    public string Name { get; }
    public string DefaultSystem { get; }
    public ToolFormat ToolFormat { get; }
    /// <summary>Tokens that end a model turn (LLaMA-Factory stop_words); the first replaces EOS for generation.</summary>
    public IReadOnlyList<string> StopWords { get; }
    /// <summary>Special tokens the template's text contains; the tokenizer must have each as one token.</summary>
    public IReadOnlyList<string> SpecialTokens { get; }

    /// <summary>Reasoning templates: <c>enable_thinking</c> (LLaMA-Factory's default true). When true, an
    /// answer without a thought is learned after an empty think block; when false (or null) thoughts are
    /// removed and the empty block is part of the (masked) prompt.</summary>
    public bool? EnableThinking { get; private set; } = true;

    /// <summary>Reasoning templates: keep the thoughts of earlier turns in preference prompts (<c>preserve_thinking</c>).</summary>
    public bool PreserveThinking { get; private set; }

    /// <summary>Whether this is a reasoning template (<c>&lt;think&gt;</c> blocks), LLaMA-Factory's ReasoningTemplate.</summary>
    public bool IsReasoning { get; }

    /// <summary>LLaMA-Factory's thought_words: what opens and closes a thought.</summary>
    public const string ThoughtOpen = "<think>\n", ThoughtClose = "\n</think>\n\n";

    private static readonly Regex Thought = new(Regex.Escape(ThoughtOpen) + "(.*?)" + Regex.Escape(ThoughtClose), RegexOptions.Singleline);

    private readonly S[] _prefix, _system, _user, _assistant, _function, _observation;
    private readonly bool _fuseSystem;

    private ChatTemplate(string name, S[] user, S[] assistant, S[] system, S[]? function = null, S[]? observation = null,
        S[]? prefix = null, string defaultSystem = "", ToolFormat toolFormat = ToolFormat.Default,
        string[]? stopWords = null, string[]? specialTokens = null, bool fuseSystem = false, bool reasoning = false)
    {
        _fuseSystem = fuseSystem;
        IsReasoning = reasoning;
        Name = name;
        _user = user;
        _assistant = assistant;
        _system = system;
        _function = function ?? assistant; // LLaMA-Factory: FunctionFormatter(slots=format_assistant.slots)
        _observation = observation ?? user;
        _prefix = prefix ?? [];
        DefaultSystem = defaultSystem;
        ToolFormat = toolFormat;
        StopWords = stopWords ?? [];
        SpecialTokens = specialTokens ?? [];
    }

    private static readonly Dictionary<string, ChatTemplate> Templates = new[]
    {
        new ChatTemplate("default",
            user: ["Human: {{content}}", S.Eos, "\nAssistant:"],
            assistant: ["{{content}}", S.Eos, "\n"],
            system: ["System: {{content}}", S.Eos, "\n"]),
        new ChatTemplate("chatml",
            user: ["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"],
            assistant: ["{{content}}<|im_end|>\n"],
            system: ["<|im_start|>system\n{{content}}<|im_end|>\n"],
            observation: ["<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n"],
            stopWords: ["<|im_end|>", "<|im_start|>"],
            specialTokens: ["<|im_start|>", "<|im_end|>"]),
        new ChatTemplate("qwen",
            user: ["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"],
            assistant: ["{{content}}<|im_end|>\n"],
            system: ["<|im_start|>system\n{{content}}<|im_end|>\n"],
            function: ["{{content}}<|im_end|>\n"],
            observation: ["<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"],
            defaultSystem: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            toolFormat: ToolFormat.Qwen,
            stopWords: ["<|im_end|>"],
            specialTokens: ["<|im_start|>", "<|im_end|>"]),
        new ChatTemplate("llama3",
            user: ["<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"],
            assistant: ["{{content}}<|eot_id|>"],
            system: ["<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>"],
            function: ["{{content}}<|eot_id|>"],
            observation: ["<|start_header_id|>ipython<|end_header_id|>\n\n{{content}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"],
            prefix: [S.Bos],
            toolFormat: ToolFormat.Llama3,
            stopWords: ["<|eot_id|>", "<|eom_id|>"],
            specialTokens: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
        Qwen3("qwen3", reasoning: true),
        // qwen3 without the reasoning handling: answers are rendered as written, no think block added.
        Qwen3("qwen3_nothink", reasoning: false),
        // Mistral tokenizer v3 (LLaMA-Factory's "mistral"): the system prompt joins the first user message.
        new ChatTemplate("mistral",
            user: ["[INST] {{content}}[/INST]"],
            assistant: [" {{content}}", S.Eos],
            system: ["{{content}}\n\n"],
            function: ["[TOOL_CALLS] {{content}}", S.Eos],
            observation: ["[TOOL_RESULTS] {\"content\": {{content}}}[/TOOL_RESULTS]"],
            prefix: [S.Bos],
            toolFormat: ToolFormat.Mistral,
            fuseSystem: true),
        new ChatTemplate("llama2",
            user: [S.Bos, "[INST] {{content}} [/INST]"],
            assistant: ["{{content}}", S.Eos],
            system: ["<<SYS>>\n{{content}}\n<</SYS>>\n\n"],
            fuseSystem: true),
    }.ToDictionary(t => t.Name);

    // LLaMA-Factory's qwen3 and qwen3_nothink: the qwen template without its default system prompt.
    private static ChatTemplate Qwen3(string name, bool reasoning) => new(name,
        user: ["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"],
        assistant: ["{{content}}<|im_end|>\n"],
        system: ["<|im_start|>system\n{{content}}<|im_end|>\n"],
        function: ["{{content}}<|im_end|>\n"],
        observation: ["<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"],
        toolFormat: ToolFormat.Qwen,
        stopWords: ["<|im_end|>"],
        specialTokens: ["<|im_start|>", "<|im_end|>"],
        reasoning: reasoning);

    public static IReadOnlyList<string> Names { get; } = [.. Templates.Keys];

    /// <summary>The model family's own template (qwen for Qwen2, qwen3 for Qwen3, mistral for Mistral,
    /// llama3 for Llama) where the tokenizer has its special tokens; otherwise the plain <c>default</c> template.</summary>
    public static string DefaultFor(string modelType, TextTokenizer tokenizer)
    {
        string preferred = modelType switch { "qwen2" => "qwen", "qwen3" => "qwen3", "mistral" => "mistral", _ => "llama3" };
        return Get(preferred).Incompatibility(tokenizer) is null ? preferred : "default";
    }

    public static ChatTemplate Get(string name) =>
        Templates.TryGetValue(name, out var t) ? t
        : throw new ArgumentException($"unknown template '{name}'; supported: {string.Join(", ", Names)}", nameof(name));

    /// <summary>This template with the reasoning settings of a job (<c>enable_thinking</c>, <c>preserve_thinking</c>).</summary>
    public ChatTemplate WithThinking(bool? enableThinking, bool preserveThinking = false)
    {
        var copy = (ChatTemplate)MemberwiseClone();
        copy.EnableThinking = enableThinking;
        copy.PreserveThinking = preserveThinking;
        return copy;
    }

    private bool UsesEos => new[] { _prefix, _system, _user, _assistant, _function, _observation }
        .Any(f => f.Any(s => s.Token == S.Kind.Eos));

    /// <summary>Null when <paramref name="tokenizer"/> can render this template, else the one-line reason.</summary>
    public string? Incompatibility(TextTokenizer tokenizer)
    {
        var missing = SpecialTokens.FirstOrDefault(t => !tokenizer.IsAddedToken(t));
        if (missing is not null) return $"template '{Name}' needs special token {missing}, which the tokenizer does not have";
        if (UsesEos && tokenizer.EosId is null)
            return $"template '{Name}' needs an EOS token, which the tokenizer does not define (eos_token in tokenizer_config.json)";
        return null;
    }

    /// <summary>Throws a one-line <see cref="InvalidOperationException"/> naming the missing token and the templates that would work.</summary>
    public void Validate(TextTokenizer tokenizer)
    {
        var why = Incompatibility(tokenizer);
        if (why is null) return;
        var fits = Names.Where(n => n != Name && Templates[n].Incompatibility(tokenizer) is null).Select(n => $"'{n}'").ToList();
        var advice = fits.Count == 0 ? "no supported template fits this tokenizer"
            : "use template " + string.Join(" or ", fits) + " instead";
        throw new InvalidOperationException($"{why}; {advice}");
    }

    /// <summary>
    /// Token ids of each message (LLaMA-Factory <c>Template._encode</c>). Message 0 starts with the prefix
    /// and the system prompt (the template's default when <paramref name="system"/> is empty) followed by
    /// the tool definitions of <paramref name="tools"/>.
    /// </summary>
    public List<int[]> EncodeMessages(TextTokenizer tokenizer, IReadOnlyList<Turn> turns, string system, string tools)
    {
        var result = new List<int[]>(turns.Count);
        var ids = new List<int>();
        foreach (var elements in MessageElements(turns, system, tools))
        {
            ids.Clear();
            foreach (var e in elements)
            {
                switch (e.Token)
                {
                    case S.Kind.Text when e.Text.Length > 0: ids.AddRange(tokenizer.Encode(e.Text)); break;
                    case S.Kind.Bos when tokenizer.BosId is { } bos: ids.Add(bos); break;
                    case S.Kind.Eos when tokenizer.EosId is { } eos: ids.Add(eos); break;
                }
            }
            result.Add([.. ids]);
        }
        return result;
    }

    /// <summary>
    /// (prompt, answer) token ids of each exchange, LLaMA-Factory's <c>encode_multiturn</c>. A reasoning
    /// template first removes every thought when thinking is disabled; then each answer without a
    /// thought gets the empty think block <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c> — learned (at the start of
    /// the answer) when thinking is enabled, masked (at the end of the prompt) otherwise.
    /// </summary>
    public List<(int[] Prompt, int[] Answer)> EncodeMultiTurn(TextTokenizer tokenizer, IReadOnlyList<Turn> turns, string system, string tools)
    {
        var messages = turns.ToList();
        if (IsReasoning && EnableThinking == false)
            for (int i = 1; i < messages.Count; i += 2) messages[i] = messages[i] with { Content = RemoveThought(messages[i].Content) };
        var encoded = EncodeMessages(tokenizer, messages, system, tools);
        var pairs = new List<(int[], int[])>(encoded.Count / 2);
        for (int i = 0; i + 1 < encoded.Count; i += 2)
            pairs.Add(IsReasoning && !HasThought(messages[i + 1].Content) ? AddEmptyThought(tokenizer, encoded[i], encoded[i + 1]) : (encoded[i], encoded[i + 1]));
        return pairs;
    }

    /// <summary>
    /// Prompt and answer ids of a conversation whose last turn is the answer, LLaMA-Factory's
    /// <c>encode_oneturn</c> (preference data). A reasoning template drops the thoughts of earlier answers
    /// (unless <see cref="PreserveThinking"/>), of the last one too when thinking is disabled, and adds the
    /// empty think block to the last answer as <see cref="EncodeMultiTurn"/> does.
    /// </summary>
    public (int[] Prompt, int[] Answer) EncodeOneTurn(TextTokenizer tokenizer, IReadOnlyList<Turn> turns, string system, string tools)
    {
        var messages = turns.ToList();
        if (IsReasoning)
        {
            if (!PreserveThinking)
                for (int i = 1; i < messages.Count - 2; i += 2) messages[i] = messages[i] with { Content = RemoveThought(messages[i].Content) };
            if (EnableThinking == false) messages[^1] = messages[^1] with { Content = RemoveThought(messages[^1].Content) };
        }
        var encoded = EncodeMessages(tokenizer, messages, system, tools);
        var (prompt, answer) = (encoded.Take(encoded.Count - 1).SelectMany(m => m).ToArray(), encoded[^1]);
        return IsReasoning && !HasThought(messages[^1].Content) ? AddEmptyThought(tokenizer, prompt, answer) : (prompt, answer);
    }

    private (int[], int[]) AddEmptyThought(TextTokenizer tokenizer, int[] prompt, int[] answer)
    {
        var thought = tokenizer.Encode(ThoughtOpen + ThoughtClose);
        return EnableThinking == true ? (prompt, [.. thought, .. answer]) : ([.. prompt, .. thought], answer);
    }

    // LLaMA-Factory tests the stripped thought words: either tag anywhere counts as a thought.
    private static bool HasThought(string content) =>
        content.Contains(ThoughtOpen.Trim(), StringComparison.Ordinal) || content.Contains(ThoughtClose.Trim(), StringComparison.Ordinal);

    private static string RemoveThought(string content) => Thought.Replace(content, "").TrimStart('\n');

    /// <summary>The text of each message as the model sees it, BOS/EOS written as the tokenizer spells them.</summary>
    public List<string> RenderMessages(TextTokenizer tokenizer, IReadOnlyList<Turn> turns, string system, string tools) =>
        MessageElements(turns, system, tools).Select(elements => string.Concat(elements.Select(e => e.Token switch
        {
            S.Kind.Bos => tokenizer.BosToken ?? "",
            S.Kind.Eos => tokenizer.EosToken ?? "",
            _ => e.Text,
        }))).ToList();

    private IEnumerable<List<S>> MessageElements(IReadOnlyList<Turn> turns, string system, string tools)
    {
        system = string.IsNullOrEmpty(system) ? DefaultSystem : system;
        for (int i = 0; i < turns.Count; i++)
        {
            var elements = new List<S>();
            var fused = "";
            if (i == 0)
            {
                elements.AddRange(_prefix);
                if (system.Length > 0 || tools.Length > 0)
                {
                    var toolText = tools.Length > 0 ? ToolText.FormatTools(ToolFormat, tools) : "";
                    var systemSlots = S.Apply(_system, system + toolText);
                    if (_fuseSystem) fused = systemSlots.First().Text;                     // Llama2Template: the first slot, before the user text
                    else elements.AddRange(systemSlots);
                }
            }
            var turn = turns[i];
            elements.AddRange(turn.Role switch
            {
                Role.User => S.Apply(_user, fused + turn.Content),
                Role.Assistant => S.Apply(_assistant, turn.Content),
                Role.Observation => S.Apply(_observation, turn.Content),
                _ => S.Apply(_function, FunctionText(turn.Content)),
            });
            yield return elements;
        }
    }

    private string FunctionText(string content) =>
        FunctionCalls.TryParse(content, out var calls, out var why)
            ? ToolText.FormatFunction(ToolFormat, calls)
            : throw new FormatException($"function_call turn is not a JSON tool call ({why}): {content}");

    /// <summary>Ids of the tokens that end generation: EOS and the stop words the tokenizer has.</summary>
    public int[] StopTokenIds(TextTokenizer tokenizer) =>
        StopWords.Select(tokenizer.TokenId).Append(tokenizer.EosId).OfType<int>().Distinct().ToArray();
}
