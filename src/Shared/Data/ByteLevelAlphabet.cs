namespace LongSeqService.Shared.Data;

/// <summary>
/// GPT-2's byte-to-unicode table: every byte 0..255 maps to one printable character, so a byte-level
/// BPE vocabulary can be written as JSON strings. Printable Latin-1 bytes map to themselves; the rest
/// (control characters, space, ...) map to U+0100 onwards, in byte order — space becomes 'Ġ', '\n' 'Ċ'.
/// </summary>
public static class ByteLevelAlphabet
{
    /// <summary>Character for each byte value (index = byte).</summary>
    public static IReadOnlyList<char> ByteToChar { get; } = Build();

    /// <summary>The byte string of <paramref name="text"/> (UTF-8) written in the byte-level alphabet.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    private static char[] Build()
    {
        var map = new char[256];
        var printable = new bool[256];
        foreach (var (lo, hi) in new[] { ('!', '~'), ('¡', '¬'), ('®', 'ÿ') })
            for (int b = lo; b <= hi; b++) printable[b] = true;
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = printable[b] ? (char)b : (char)(256 + next++);
        return map;
    }
}
