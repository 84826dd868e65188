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
    /// <param name="baseDir">Where relative dataset paths and dataset_dir are resolved (the config file's folder).</param>
    public static PreparedRun Prepare(JobSpec spec, string baseDir, ScalarType? dtypeOverride = null)
    {
        var shape = ModelShape.TryResolve(spec.ModelNameOrPath ?? "", out var modelError);
        var errors = JobSpecValidator.Validate(spec, shape, requireOutputDir: true);
        if (modelError != null && !string.IsNullOrWhiteSpace(spec.ModelNameOrPath)) errors.Add(new SpecError("model_name_or_path", modelError));
        if (errors.Count > 0) throw new JobSpecException(errors);

        var outputDir = Path.GetFullPath(spec.OutputDir!);
        spec = spec with { OutputDir = outputDir };
        // Each dataset name or path resolved now, so a wrong one is refused before anything else (LLaMA-Factory's dataset_dir/dataset_info.json).
        var datasetDir = Path.GetFullPath(spec.DatasetDir ?? DatasetInfo.DefaultDir, baseDir);
        var trainSources = Sources(spec, spec.Dataset!, "dataset", baseDir, datasetDir);
        var evalSources = spec.EvalDataset is { } evalList ? Sources(spec, evalList, "eval_dataset", baseDir, datasetDir) : [];
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
        var encode = Encoding(spec, shape!, tokenizer);

        var notes = new List<string>();
        var trainSets = Load(spec, trainSources, "dataset");
        var (all, skipped) = encode(trainSets);
        int examples = trainSets.Sum(d => d.Count);
        Fail(all.Count == 0, "cutoff_len", spec.Stage == Stage.Pt
            ? $"{spec.CutoffLen} tokens leave nothing to learn in any of the {examples} documents; raise cutoff_len to at least 2"
            : $"{spec.CutoffLen} tokens leave no answer token in any of the {examples} examples (the prompts are longer); raise cutoff_len");
        if (skipped > 0) notes.Add(spec.Stage == Stage.Pt
            ? $"{skipped} of {examples} documents skipped: fewer than 2 tokens (nothing to predict)"
            : $"{skipped} of {examples} examples skipped: their prompt fills cutoff_len ({spec.CutoffLen}) and leaves no answer token");

        TrainingData train, val;
        if (evalSources.Count > 0)
        {
            (train, val) = (all, encode(Load(spec, evalSources, "eval_dataset")).Data);
            Fail(val.Count == 0, "eval_dataset", $"no example of {spec.EvalDataset} fits cutoff_len ({spec.CutoffLen})");
        }
        else (train, val) = Split(all, spec.ValSize, (ulong)spec.Seed);
        Fail(train.Count == 0, "val_size", $"{spec.ValSize} leaves no training examples out of {all.Count}");
        if (spec.Packing)
        {
            // After the split, so held-out examples never share a row with training ones.
            (train, val) = (Pack(train, spec), Pack(val, spec));
            Fail(train.Count == 0, "cutoff_len", $"packing into rows of {spec.CutoffLen} tokens left no complete row; lower cutoff_len or set packing: false");
            notes.Add($"packed {train.Packed!.Sum(r => r.Examples.Length)} examples into {train.Count} rows of at most {spec.CutoffLen} tokens ({(IsNeat(spec) ? "no attention across examples" : "concatenated, attention across documents")})");
        }
        Fail(spec.EvalSteps is not null && val.Count == 0, "eval_steps", "needs a validation split: set val_size or eval_dataset");

        var dtype = dtypeOverride ?? (spec.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32);
        var padId = tokenizer.PadId ?? tokenizer.EosId ?? 0;
        return new PreparedRun(spec, shape!, new ModelFactory(spec, dtype, tokenizerDir), outputDir, train, val, padId, notes)
        {
            Recipe = new RunRecipe(spec, baseDir, dtypeOverride, null),
        };
    }

    private static List<DatasetSource> Sources(JobSpec spec, string list, string field, string baseDir, string datasetDir)
    {
        try
        {
            // formatting applies to files given by path; a dataset_info.json entry carries its own.
            return DatasetInfo.Resolve(list, baseDir, datasetDir)
                .Select(s => s.Columns.IsDetected ? s with { Formatting = spec.Formatting } : s).ToList();
        }
        catch (DatasetNameException e) { throw new JobSpecException([new SpecError(field, e.Message)]); }
        catch (DatasetException e) { throw new JobSpecException([new SpecError(field, e.Message)]); }
    }

    /// <summary>Every dataset read (stage pt: as documents), checked against the stage, cut to max_samples each (LLaMA-Factory cuts each dataset before concatenating).</summary>
    private static List<LoadedDataset> Load(JobSpec spec, List<DatasetSource> sources, string field)
    {
        var sets = new List<LoadedDataset>();
        foreach (var source in sources)
        {
            LoadedDataset d;
            try { d = DatasetLoader.Load(source, pretrain: spec.Stage == Stage.Pt); }
            catch (DatasetException e) { throw new JobSpecException([new SpecError(field, e.Message)]); }
            Fail(spec.Stage == Stage.Dpo && !d.IsPreference, field,
                $"stage dpo needs preference data (chosen and rejected answers); {source.Name} has none");
            Fail(spec.Stage == Stage.Sft && d.IsPreference, "stage", $"{source.Name} is preference data (chosen/rejected); use stage: dpo");
            Fail(spec.Stage == Stage.Sft && d.IsText, "stage", $"{source.Name} is pre-training text; use stage: pt");
            sets.Add(spec.MaxSamples is { } m && m < d.Count ? d with { Examples = d.Examples.Take(m).ToList() } : d);
        }
        return sets;
    }

    /// <summary>How the stage turns datasets into training data: pt documents, SFT conversations or DPO pairs (template checked here).</summary>
    private static Func<List<LoadedDataset>, (TrainingData Data, int Skipped)> Encoding(JobSpec spec, ModelShape shape, TextTokenizer tokenizer)
    {
        if (spec.Stage == Stage.Pt)
        {
            PretrainEncoder pt;
            try { pt = new PretrainEncoder(tokenizer, spec.CutoffLen, spec.Template); }
            catch (ArgumentException e) { throw new JobSpecException([new SpecError("model_name_or_path", e.Message)]); }
            return sets => Concat(sets, d => pt.Encode(d), items => new TrainingData(items, null));
        }
        var template = ChatTemplate.Get(spec.Template ?? ChatTemplate.DefaultFor(shape.ModelType, tokenizer));
        if (template.Incompatibility(tokenizer) is { } why) Fail(true, "template", why);
        var encoder = new Encoder(tokenizer, template, spec.CutoffLen);
        return spec.Stage == Stage.Dpo
            ? sets => Concat(sets, encoder.EncodePairwise, items => new TrainingData(null, items))
            : sets => Concat(sets, encoder.EncodeSupervised, items => new TrainingData(items, null));
    }

    private static (TrainingData, int) Concat<T>(List<LoadedDataset> sets, Func<LoadedDataset, EncodedDataset<T>> encode, Func<List<T>, TrainingData> wrap)
    {
        var encoded = sets.Select(encode).ToList();
        return (wrap(encoded.SelectMany(e => e.Items).ToList()), encoded.Sum(e => e.Skipped));
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

    private static bool NonEmpty(string dir) => Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any();

    private static void Fail(bool condition, string field, string message)
    {
        if (condition) throw new JobSpecException([new SpecError(field, message)]);
    }
}
