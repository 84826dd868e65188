using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Training;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>Real runs on the repository's datasets, each in its own temporary output_dir (deleted on dispose).</summary>
internal sealed class RunDirs : IDisposable
{
    private readonly string _root = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lss-train-" + Guid.NewGuid().ToString("N"));

    public RunDirs() => Directory.CreateDirectory(_root);

    /// <summary>A path under the temp root; not created (RunPreparation wants output_dir absent or empty).</summary>
    public string Path(string name) => System.IO.Path.Combine(_root, name);

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    /// <summary>Tiny-llama SFT on the first rows of identity.json: short sequences, 4 steps of 2 × 2 examples.</summary>
    public static JobSpec Sft(string outputDir) => new()
    {
        ModelNameOrPath = "builtin:tiny-llama", Stage = Stage.Sft, FinetuningType = FinetuningType.Full, Template = "llama3",
        Dataset = RepoPaths.Data("identity.json"), MaxSamples = 12, CutoffLen = 48,
        PerDeviceTrainBatchSize = 2, GradientAccumulationSteps = 2, MaxSteps = 4, LearningRate = 2e-3,
        LrSchedulerType = LrSchedulerType.Cosine, WarmupSteps = 1, WeightDecay = 0.01, LoggingSteps = 1, SaveSteps = 2, Seed = 3,
        OutputDir = outputDir,
    };

    /// <summary>Tiny-llama DPO on the first pairs of dpo_en_demo.json.</summary>
    public static JobSpec Dpo(string outputDir, string finetuning) => Sft(outputDir) with
    {
        Stage = Stage.Dpo, FinetuningType = WireNames.Parse<FinetuningType>(finetuning), Dataset = RepoPaths.Data("dpo_en_demo.json"), MaxSamples = 10, CutoffLen = 40,
        PrefBeta = 0.1, PrecomputeRefLogps = true, LoraRank = 4, LoraDropout = 0.1, LearningRate = 5e-3,
    };

    public static RunResult Train(JobSpec spec, ITrainingObserver? observer = null) =>
        new TrainingRun(RunPreparation.Prepare(spec, RepoPaths.Root), observer, new RunOptions(CaptureFinalParameters: true, IntraOpThreadsPerRank: 1)).Execute();

    public static List<JsonObject> Log(string outputDir) => TrainerLog.Read(outputDir);

    /// <summary>Parameters in named_parameters order, flattened to float64 (as <see cref="RunResult.FinalParameters"/>).</summary>
    public static double[] Flatten(CausalLM model)
    {
        using var scope = NewDisposeScope();
        return cat(model.parameters().Select(p => p.detach().flatten().to(ScalarType.Float64)).ToArray()).data<double>().ToArray();
    }
}

/// <summary>Stops a run the way a crash would, right after a checkpoint has been written.</summary>
internal sealed class CrashAfterCheckpoint : ITrainingObserver
{
    public void OnCheckpoint(int step, string path) => throw new SimulatedCrash(step);
}

internal sealed class SimulatedCrash(int step) : Exception($"simulated crash after checkpoint {step}");
