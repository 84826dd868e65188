namespace LongSeqService.Trainer.Cli;

/// <summary>A CLI mistake: printed as one line, exit code 2, before anything runs.</summary>
public sealed class CliException(string message) : Exception(message);

/// <summary>
/// Positional arguments and <c>--key value</c> / <c>--key=value</c> / bare <c>--flag</c> options, in order,
/// as Hugging Face's argument parser (and so LLaMA-Factory's) reads them: a flag's value is the next
/// argument unless that is another option, so <c>--do_train --bf16 True --plot_loss</c> is three flags.
/// Dashes in keys become underscores, so <c>--cutoff-len</c> and <c>--cutoff_len</c> are the same key.
/// </summary>
public sealed class CliArgs
{
    public List<string> Positional { get; } = [];
    public List<KeyValuePair<string, string?>> Options { get; } = [];

    public static CliArgs Parse(IEnumerable<string> args, IReadOnlySet<string>? flags = null)
    {
        var r = new CliArgs();
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) { r.Positional.Add(a); continue; }
            var body = a[2..];
            int eq = body.IndexOf('=');
            string key = (eq >= 0 ? body[..eq] : body).Replace('-', '_');
            bool valueFollows = i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal);
            if (key.Length == 0) throw new CliException($"'{a}' is not an option (--key value)");
            if (eq >= 0) r.Options.Add(new(key, body[(eq + 1)..]));
            else if (valueFollows) r.Options.Add(new(key, list[++i]));
            else if (flags?.Contains(key) == true) r.Options.Add(new(key, "true"));
            else throw new CliException($"--{key} needs a value (--{key} VALUE)");
        }
        return r;
    }

    public string? Get(string key) => Options.LastOrDefault(o => o.Key == key).Value;
    public bool Has(string key) => Options.Any(o => o.Key == key);

    public string Require(string key, string example) =>
        Get(key) ?? throw new CliException($"--{key.Replace('_', '-')} is required (e.g. --{key.Replace('_', '-')} {example})");

    public int Int(string key, int fallback)
    {
        var v = Get(key);
        if (v is null) return fallback;
        return int.TryParse(v, out var x) ? x : throw new CliException($"--{key.Replace('_', '-')}: expected a whole number, got '{v}'");
    }

    /// <summary>true/1/yes or false/0/no (any case); <paramref name="fallback"/> when the key is absent.</summary>
    public bool Bool(string key, bool fallback)
    {
        var v = Get(key);
        return v is null ? fallback : v.ToLowerInvariant() switch
        {
            "true" or "1" or "yes" => true,
            "false" or "0" or "no" => false,
            _ => throw new CliException($"--{key.Replace('_', '-')}: expected true or false, got '{v}'"),
        };
    }

    public int[] IntList(string key, string example)
    {
        var v = Require(key, example);
        try { return v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(ParseSize).ToArray(); }
        catch (FormatException) { throw new CliException($"--{key.Replace('_', '-')}: expected a comma list of whole numbers like {example}, got '{v}'"); }
    }

    /// <summary>Whole numbers with an optional k suffix (8k = 8192).</summary>
    public static int ParseSize(string s) =>
        s.EndsWith('k') || s.EndsWith('K') ? checked(int.Parse(s[..^1]) * 1024) : int.Parse(s);

    /// <summary>Fails on options the command does not know, suggesting the closest.</summary>
    public void RejectUnknown(IReadOnlyCollection<string> known)
    {
        foreach (var (k, _) in Options)
            if (!known.Contains(k))
            {
                var best = known.OrderBy(x => Shared.Jobs.EditDistance.Levenshtein(k, x)).FirstOrDefault();
                throw new CliException($"unknown option --{k.Replace('_', '-')}" + (best != null ? $"; did you mean --{best.Replace('_', '-')}?" : ""));
            }
    }
}
