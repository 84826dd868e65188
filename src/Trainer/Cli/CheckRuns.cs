using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Models;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Cli;

/// <summary>Runs on synthetic data for <c>parity</c> and <c>bench</c>: a spec, seeded sequences of a given
/// length, no files written.</summary>
public static class CheckRuns
{
    public static ScalarType ParseDtype(string? name) => name switch
    {
        null or "float32" or "fp32" => ScalarType.Float32,
        "float64" or "fp64" => ScalarType.Float64,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        _ => throw new CliException($"--dtype: '{name}' is not one of float64, float32, bfloat16"),
    };

    public static ModelShape Shape(string model)
    {
        var shape = ModelShape.TryResolve(model, out var error) ?? throw new CliException("--model: " + error);
        if (ModelShapes.IsShape(model))
        {
            try { ModelFactory.ShapeConfig(model); }                     // what the trainer cannot build yet, refused before any rank starts
            catch (NotSupportedException e) { throw new CliException("--model: " + e.Message); }
        }
        return shape;
    }

    /// <summary>Checks a spec the way a job is checked, so parity and bench refuse what training would.</summary>
    public static void Validate(JobSpec spec, ModelShape shape)
    {
        var errors = JobSpecValidator.Validate(spec, shape);
        if (errors.Count > 0) throw new JobSpecException(errors);
    }

    /// <summary>A run on <paramref name="count"/> seeded sequences (stage and seed from the spec); its recipe lets
    /// rank processes make the same data again.</summary>
    public static PreparedRun Prepare(JobSpec spec, ModelShape shape, ScalarType dtype, int count, int seqLen, bool exactLength) =>
        new SyntheticRecipe(count, seqLen, Vocab(shape), exactLength).Prepare(spec, dtype);

    /// <summary>A run on data made by hand (no recipe: its ranks can only be threads).</summary>
    public static PreparedRun Prepare(JobSpec spec, ModelShape shape, ScalarType dtype, TrainingData train) =>
        new(spec, shape, new ModelFactory(spec, dtype, tokenizerDir: null), OutputDir: null, train, TrainingData.Empty, PadId: 0, Notes: []);

    public static Launch ParseLaunch(string? launch) => launch switch
    {
        null or "threads" => Launch.Threads,
        "processes" => Launch.Processes,
        _ => throw new CliException($"--launch: '{launch}' is not one of threads, processes"),
    };

    public static int Vocab(ModelShape shape) => shape.VocabSize > 0 ? shape.VocabSize : BuiltinModels.VocabSize;
}
