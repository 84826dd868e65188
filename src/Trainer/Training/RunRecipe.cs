using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// How a <see cref="PreparedRun"/> was made, so that each rank process of a run launched as processes
/// can make the same one again from a file: a job spec prepared from its dataset, or synthetic data
/// (parity, bench) generated from a seed.
/// </summary>
public sealed record RunRecipe(JobSpec Spec, string? BaseDir, ScalarType? DType, SyntheticRecipe? Synthetic)
{
    public PreparedRun Prepare() =>
        Synthetic is { } s ? s.Prepare(Spec, DType ?? ScalarType.Float32) : RunPreparation.Prepare(Spec, BaseDir ?? ".", DType);
}

/// <summary>Seeded synthetic sequences (see <see cref="SyntheticData"/>); the stage and seed come from the spec.</summary>
public sealed record SyntheticRecipe(int Count, int SeqLen, int Vocab, bool ExactLength)
{
    public TrainingData Generate(JobSpec spec)
    {
        if (spec.Stage == Stage.Dpo) return new TrainingData(null, SyntheticData.Pairs(Count, SeqLen, Vocab, spec.Seed, ExactLength));
        var data = new TrainingData(SyntheticData.Sft(Count, SeqLen, Vocab, spec.Seed, ExactLength), null);
        return spec.Packing ? RunPreparation.Pack(data, spec) : data; // rows of cutoff_len tokens
    }

    /// <summary>A run on this data with no files written (no output_dir, no tokenizer).</summary>
    public PreparedRun Prepare(JobSpec spec, ScalarType dtype)
    {
        var shape = ModelShape.TryResolve(spec.ModelNameOrPath ?? "", out var error) ?? throw new ArgumentException("model_name_or_path: " + error);
        return new PreparedRun(spec, shape, new ModelFactory(spec, dtype, tokenizerDir: null), OutputDir: null, Generate(spec), TrainingData.Empty, PadId: 0, Notes: [])
        {
            Recipe = new RunRecipe(spec, null, dtype, this),
        };
    }
}
