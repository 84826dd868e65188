using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;

namespace LongSeqService.Trainer.Tests.Data;

/// <summary>One shared instance of the built-in tokenizer for the data tests.</summary>
internal static class TestTokenizer
{
    private static readonly Lazy<TextTokenizer> Instance = new(() => TextTokenizer.Load(BuiltinTokenizer.EnsureCached()));
    public static TextTokenizer Builtin => Instance.Value;
}
