using System.Text;

namespace LongSeqService.Shared.Jobs;

/// <summary>The README's job-spec reference, as Markdown, from the declaration. A test keeps README.md
/// equal to it (and rewrites it with LONGSEQ_UPDATE_README=1).</summary>
public static class JobSpecTable
{
    public const string Begin = "<!-- job-spec-table: generated from src/Shared/Jobs/JobSpec.cs by JobSpecTable; do not edit by hand -->";
    public const string End = "<!-- /job-spec-table -->";

    public static string Markdown()
    {
        var md = new StringBuilder();
        md.AppendLine(Begin);
        md.AppendLine("| key | type | default | what it does |");
        md.AppendLine("|---|---|---|---|");
        string? group = null;
        foreach (var k in JobSpecKeys.All)
        {
            var name = (k.Group != group ? $"**{k.Group}** " : "") + $"`{k.Name}`";
            group = k.Group;
            var type = k.Type switch
            {
                SpecType.Integer => "integer",
                SpecType.Number => "number",
                SpecType.Boolean => "boolean",
                _ => "string",
            } + (k.Range.Length > 0 ? $" ({k.Range})" : "");
            var what = new StringBuilder(k.Description);
            if (k.Allowed != null) what.Append(" One of: ").Append(string.Join(", ", k.Allowed.Select(a => $"`{a}`"))).Append('.');
            if (k.LlamaFactoryDefault != null) what.Append(" *LLaMA-Factory's default: ").Append(k.LlamaFactoryDefault).Append(".*");
            if (k.ServiceOwned) what.Append(" (CLI only: the service sets it.)");
            md.AppendLine($"| {name} | {type} | {Cell(k.DefaultText)} | {Cell(what.ToString())} |");
        }
        md.AppendLine();
        md.AppendLine($"`{JobSpecKeys.DeepSpeed}` (CLI only): a DeepSpeed config file such as LLaMA-Factory's `examples/deepspeed/ds_z3_config.json`; " +
                      "its `zero_optimization.stage` sets `zero_stage` (the two must agree; stages 0 to 3 are honoured), offload is reported and not done.");
        md.AppendLine();
        md.AppendLine("LLaMA-Factory keys accepted with one warning each and otherwise ignored:");
        md.AppendLine();
        md.AppendLine("| key | why it changes nothing here |");
        md.AppendLine("|---|---|");
        foreach (var k in JobSpecKeys.Ignored) md.AppendLine($"| `{k.Name}` | {Cell(k.Why)} |");
        md.AppendLine(End);
        return md.ToString();
    }

    private static string Cell(string text) => text.Replace("|", "\\|").Replace("<", "&lt;").Replace(">", "&gt;");
}
