namespace LongSeqService.Shared.Data;

/// <summary>
/// One element of a chat-template formatter (LLaMA-Factory's SLOTS): literal text, possibly with a
/// <c>{{content}}</c> placeholder, or the tokenizer's BOS/EOS token, whatever its spelling.
/// </summary>
public readonly record struct TemplateSlot(string Text, TemplateSlot.Kind Token)
{
    public enum Kind { Text, Bos, Eos }

    public static readonly TemplateSlot Bos = new("", Kind.Bos);
    public static readonly TemplateSlot Eos = new("", Kind.Eos);

    public static implicit operator TemplateSlot(string text) => new(text, Kind.Text);

    /// <summary>Fills the first <c>{{content}}</c> of each text slot, as StringFormatter.apply does.</summary>
    public static IEnumerable<TemplateSlot> Apply(IEnumerable<TemplateSlot> slots, string content)
    {
        foreach (var s in slots)
        {
            if (s.Token != Kind.Text) { yield return s; continue; }
            int i = s.Text.IndexOf("{{content}}", StringComparison.Ordinal);
            yield return i < 0 ? s : new TemplateSlot(string.Concat(s.Text.AsSpan(0, i), content, s.Text.AsSpan(i + 11)), Kind.Text);
        }
    }
}
