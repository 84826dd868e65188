using System.Buffers;
using System.Text.Unicode;

namespace LongSeqService.Api.Datasets;

/// <summary>
/// Checks that an upload is UTF-8 while it streams past, and finds where it first is not (1-based line,
/// and byte of that line), so a file in another encoding is refused naming the line instead of being
/// decoded into replacement characters or failing deep in the JSON reader.
/// </summary>
public sealed class Utf8Check
{
    private readonly char[] _chars = new char[16384];
    private byte[] _pending = [];          // a sequence cut by the chunk boundary, completed by the next chunk
    private int _line = 1;
    private long _byteInLine = 1;

    /// <summary>Where the first invalid sequence starts; null while the bytes so far are UTF-8.</summary>
    public (int Line, long Byte)? Error { get; private set; }

    public void Append(ReadOnlySpan<byte> chunk, bool final = false)
    {
        if (Error != null) return;
        ReadOnlySpan<byte> data = _pending.Length == 0 ? chunk : [.. _pending, .. chunk];
        while (true)
        {
            var status = Utf8.ToUtf16(data, _chars, out int read, out _, replaceInvalidSequences: false, isFinalBlock: final);
            Count(data[..read]);
            data = data[read..];
            switch (status)
            {
                case OperationStatus.Done: _pending = []; return;
                case OperationStatus.DestinationTooSmall: continue;
                case OperationStatus.NeedMoreData: _pending = data.ToArray(); return;
                default: Error = (_line, _byteInLine); return;
            }
        }
    }

    private void Count(ReadOnlySpan<byte> bytes)
    {
        for (int nl; (nl = bytes.IndexOf((byte)'\n')) >= 0; bytes = bytes[(nl + 1)..]) { _line++; _byteInLine = 1; }
        _byteInLine += bytes.Length;
    }
}
