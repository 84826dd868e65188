using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Training;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// <c>trainer train CONFIG.yaml [--key value …]</c>: LLaMA-Factory-style training from a YAML file whose
/// keys any <c>--key value</c> may override. Bad input is refused before anything runs or is written.
/// </summary>
public static class TrainCommand
{
    public const string Usage = "trainer train CONFIG.yaml [--key value ...]   (keys: see the job spec reference in the README)";

    public static int Run(string[] args)
    {
        var cli = CliArgs.Parse(args);
        if (cli.Positional.Count != 1) throw new CliException("usage: " + Usage);
        var configPath = Path.GetFullPath(cli.Positional[0]);
        if (!File.Exists(configPath)) throw new CliException($"config file '{cli.Positional[0]}' not found");

        var warnings = new List<string>();
        var pairs = JobSpecParser.ReadYaml(File.ReadAllText(configPath), Path.GetFileName(configPath));
        pairs.AddRange(cli.Options);
        var spec = JobSpecParser.FromPairs(pairs, warnings);
        foreach (var w in warnings) Console.Error.WriteLine("warning: " + w);

        var prep = RunPreparation.Prepare(spec, Path.GetDirectoryName(configPath)!);
        foreach (var n in prep.Notes) Console.Error.WriteLine("note: " + n);
        Console.Error.WriteLine($"{prep.Spec.Stage} on {prep.Spec.ModelNameOrPath} ({prep.Spec.FinetuningType}): {prep.TrainCount} training examples" +
            (prep.Val.Count > 0 ? $", {prep.Val.Count} validation" : "") +
            $"; sequence_parallel_size {prep.Spec.SequenceParallelSize} ({prep.Spec.SequenceParallelMode}), data_parallel_size {prep.Spec.DataParallelSize}");

        using (var progress = new ConsoleProgress())
            new TrainingRun(prep, progress).Execute();
        Console.Error.WriteLine($"done: {prep.OutputDir}");
        return 0;
    }
}
