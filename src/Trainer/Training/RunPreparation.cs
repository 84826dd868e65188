using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Models;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>Everything a run needs, checked and loaded; nothing has been written yet.</summary>
public sealed record PreparedRun(JobSpec Spec, ModelShape Shape, ModelFactory Models, string? OutputDir,
    TrainingData Train, TrainingData Val, int PadId, IReadOnlyList<string> Notes)
{
    public int TrainCount => Train.Count;

    /// <summary>How to prepare this run again in another process (ranks launched as processes); null for a run made by hand.</summary>
    public RunRecipe? Recipe { get; init; }
}

/// <summary>
/// Turns a job spec into a <see cref="PreparedRun"/>, refusing bad input before anything runs or is
/// written: unknown models, missing files, malformed data (with line numbers), a template the
/// tokenizer cannot render, a cutoff_len that leaves no answer token in any example, a non-empty
/// output_dir. Every refusal is a <see cref="JobSpecException"/> naming the key at fault.
/// </summary>
public static class RunPreparation
{
    /// <param name="baseDir">Where relative dataset paths are resolved (the config file's folder).</param>
    public static PreparedRun Prepare(JobSpec spec, string baseDir, ScalarType? dtypeOverride = null)
    {
        var shape = ModelShape.TryResolve(spec.ModelNameOrPath ?? "", out var modelError);
        var errors = JobSpecValidator.Validate(spec, shape, requireOutputDir: true);
        if (modelError != null && !string.IsNullOrWhiteSpace(spec.ModelNameOrPath)) errors.Add(new SpecError("model_name_or_path", modelError));
        if (errors.Count > 0) throw new JobSpecException(errors);

        var datasetPath = Path.GetFullPath(spec.Dataset!, baseDir);
        var outputDir = Path.GetFullPath(spec.OutputDir!);
        spec = spec with { Dataset = datasetPath, OutputDir = outputDir };
        Fail(!File.Exists(datasetPath), "dataset", $"file '{datasetPath}' not found");
        Fail(NonEmpty(outputDir) && !spec.OverwriteOutputDir && spec.ResumeFromCheckpoint is null, "output_dir",
            $"'{outputDir}' is not empty; set overwrite_output_dir: true, resume_from_checkpoint: true, or choose another directory");
        if (spec.ResumeFromCheckpoint is { } resume && resume != "latest")
        {
            // Checked here, not when the run starts: a wrong path must be refused before output_dir is created.
            var checkpoint = Path.GetFullPath(resume);
            Fail(!File.Exists(Path.Combine(checkpoint, "trainer_state.json")), "resume_from_checkpoint",
                $"'{checkpoint}' is not a checkpoint directory (it has no trainer_state.json); give a {Checkpoints.Prefix}<step> folder, or true for the newest in output_dir");
            spec = spec with { ResumeFromCheckpoint = checkpoint };
        }

        Fail(ModelShapes.IsShape(spec.ModelNameOrPath!), "model_name_or_path",
            $"'{spec.ModelNameOrPath}' is a shape (a config, random weights, no tokenizer): training on a dataset needs a model directory with tokenizer.json; " +
            "`trainer bench` and `trainer parity` run shapes on synthetic tokens");
        var tokenizerDir = TokenLengths.TokenizerDir(spec.ModelNameOrPath!);
        Fail(!File.Exists(Path.Combine(tokenizerDir, "tokenizer.json")), "model_name_or_path", $"'{tokenizerDir}' has no tokenizer.json");
        using var tokenizer = TextTokenizer.Load(tokenizerDir);
        var templateName = spec.Template ?? ChatTemplate.DefaultFor(shape!.ModelType, tokenizer);
        var template = ChatTemplate.Get(templateName);
        if (template.Incompatibility(tokenizer) is { } why) Fail(true, "template", why);

        LoadedDataset dataset;
        try { dataset = DatasetLoader.Load(datasetPath, spec.Formatting); }
        catch (DatasetException e) { throw new JobSpecException([new SpecError("dataset", e.Message)]); }
        Fail(spec.Stage == Stage.Dpo && !dataset.IsPreference, "dataset",
            $"stage dpo needs preference data (chosen and rejected answers); {Path.GetFileName(datasetPath)} has none");
        Fail(spec.Stage == Stage.Sft && dataset.IsPreference, "stage",
            $"{Path.GetFileName(datasetPath)} is preference data (chosen/rejected); use stage: dpo");

        var notes = new List<string>();
        var encoder = new Encoder(tokenizer, template, spec.CutoffLen);
        TrainingData all;
        int skipped;
        if (spec.Stage == Stage.Dpo)
        {
            var enc = encoder.EncodePairwise(dataset);
            (all, skipped) = (new TrainingData(null, Limit(enc.Items, spec.MaxSamples)), enc.Skipped);
        }
        else
        {
            var enc = encoder.EncodeSupervised(dataset);
            (all, skipped) = (new TrainingData(Limit(enc.Items, spec.MaxSamples), null), enc.Skipped);
        }
        Fail(all.Count == 0, "cutoff_len",
            $"{spec.CutoffLen} tokens leave no answer token in any of the {dataset.Count} examples (the prompts are longer); raise cutoff_len");
        if (skipped > 0) notes.Add($"{skipped} of {dataset.Count} examples skipped: their prompt fills cutoff_len ({spec.CutoffLen}) and leaves no answer token");

        var (train, val) = Split(all, spec.ValSize, (ulong)spec.Seed);
        Fail(train.Count == 0, "val_size", $"{spec.ValSize} leaves no training examples out of {all.Count}");
        if (spec.Packing)
        {
            // After the split, so held-out examples never share a row with training ones.
            (train, val) = (Pack(train, spec), Pack(val, spec));
            Fail(train.Count == 0, "cutoff_len", $"packing into rows of {spec.CutoffLen} tokens left no complete row; lower cutoff_len or set packing: false");
            notes.Add($"packed {train.Packed!.Sum(r => r.Examples.Length)} examples into {train.Count} rows of at most {spec.CutoffLen} tokens ({(IsNeat(spec) ? "no attention across examples" : "concatenated, attention across documents")})");
        }
        Fail(spec.EvalSteps is not null && val.Count == 0, "eval_steps", "needs a validation split: set val_size");

        var dtype = dtypeOverride ?? (spec.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32);
        var padId = tokenizer.PadId ?? tokenizer.EosId ?? 0;
        return new PreparedRun(spec, shape!, new ModelFactory(spec, dtype, tokenizerDir), outputDir, train, val, padId, notes)
        {
            Recipe = new RunRecipe(spec, baseDir, dtypeOverride, null),
        };
    }

    private static (TrainingData Train, TrainingData Val) Split(TrainingData all, double valSize, ulong seed)
    {
        if (all.Sft is { } sft)
        {
            var (t, v) = DataSplit.TrainVal(sft, valSize, seed);
            return (new TrainingData(t, null), new TrainingData(v, null));
        }
        var (tp, vp) = DataSplit.TrainVal(all.Pairs!, valSize, seed);
        return (new TrainingData(null, tp), new TrainingData(null, vp));
    }

    /// <summary>SFT packing never lets examples see each other unless asked; pre-training concatenates as LLaMA-Factory does.</summary>
    public static bool IsNeat(JobSpec spec) => spec.NeatPacking ?? spec.Stage != Stage.Pt;

    public static TrainingData Pack(TrainingData data, JobSpec spec) =>
        data.Sft is { } sft ? new TrainingData(null, null, SequencePacker.Pack(sft, spec.CutoffLen, IsNeat(spec))) : data;

    private static IReadOnlyList<T> Limit<T>(IReadOnlyList<T> items, int? max) => max is { } m && m < items.Count ? items.Take(m).ToList() : items;

    private static bool NonEmpty(string dir) => Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any();

    private static void Fail(bool condition, string field, string message)
    {
        if (condition) throw new JobSpecException([new SpecError(field, message)]);
    }
}
