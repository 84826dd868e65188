using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Memory;
using LongSeqService.Trainer.Cli;
using LongSeqService.Trainer.Model;
using LongSeqService.Trainer.Tests.Mpi;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// The memory model against the trainer: its dimensions and parameter counts against the models the trainer
/// builds, and its per-rank peak against each rank's measured peak (VmHWM, ranks as processes) on the tiny
/// models, within ±10%. The rank's runtime floor is taken from its own baseline (it depends on how the process
/// was started); the per-token terms, the loss head, the buffers and the step's fixed cost are the model's.
/// </summary>
public class MemoryModelValidationTests
{
    [Theory]
    [InlineData("builtin:tiny-llama")]
    [InlineData("builtin:tiny-qwen2")]
    public void Dims_Builtins_CountWhatTheTrainerBuilds(string name)
    {
        Assert.True(BuiltinModels.TryGet(name, out var cfg));
        var dims = ModelDims.Builtins[name];
        Assert.Equal((cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.KeyValueHeads, cfg.HeadDim, cfg.VocabSize, cfg.TieWordEmbeddings, cfg.QkvBias),
            (dims.Hidden, dims.Intermediate, dims.Layers, dims.Heads, dims.KvHeads, dims.HeadDim, dims.Vocab, dims.TiedEmbeddings, dims.QkvBias));
        using var model = BuiltinModels.Create(name, ScalarType.Float32, new SdpaAttention());
        Assert.Equal(dims.Parameters, model.parameters().Sum(p => p.numel()));

        model.ApplyLora(new LoraSettings(4, 8, 0.0, LoraSettings.AllLinear));
        Assert.Equal(dims.LoraParameters(4, JobSpecValidator.LoraTargets), model.parameters().Where(p => p.requires_grad).Sum(p => p.numel()));
    }

    [MpiTheory]
    [InlineData("builtin:tiny-llama", 8192, 2, "zigzag-ring", false)]
    [InlineData("builtin:tiny-qwen2", 8192, 4, "hybrid", true)]
    [InlineData("builtin:tiny-llama", 4096, 2, "ulysses", true)]
    [Trait("Category", "Slow")]
    public void Estimate_TinyModelsOverProcesses_WithinTenPercentOfEachRanksPeak(string model, int seqLen, int sp, string mode, bool checkpointing)
    {
        var spec = new JobSpec
        {
            ModelNameOrPath = model, Dataset = "(synthetic)", SequenceParallelSize = sp, SequenceParallelMode = WireNames.Parse<SequenceParallelMode>(mode), CutoffLen = seqLen,
            LearningRate = 1e-4, LrSchedulerType = WireNames.Parse<LrSchedulerType>("constant"), GradientCheckpointing = checkpointing, LoggingSteps = 1, Launch = WireNames.Parse<Launch>("processes"),
        };
        var estimate = MemoryModel.Estimate(ModelDims.Builtins[model], MemoryRequest.FromSpec(spec));
        long modelState = estimate.Resident.Where(t => !t.Name.StartsWith("framework", StringComparison.Ordinal)).Sum(t => t.Bytes);

        var measured = BenchCommand.MeasureProcesses(spec, CheckRuns.Shape(model), ScalarType.Float32, seqLen, steps: 1, warmup: 1, threadsPerRank: 1);

        var peaks = measured["rank_peak_bytes"]!.AsArray().Select(p => (long)p!).ToArray();
        var baselines = measured["rank_baseline_bytes"]!.AsArray().Select(p => (long)p!).ToArray();
        for (int r = 0; r < peaks.Length; r++)
        {
            // A rank started from the test host carries a larger runtime floor than one started from the CLI
            // (~50 MiB more, measured): the floor is this process's own (its baseline less the model state);
            // every other term is the model's.
            long floor = baselines[r] - modelState;
            double predicted = estimate.PeakBytes - MemoryModel.FrameworkFloorBytes + floor;
            Assert.InRange(predicted / peaks[r], 0.9, 1.1);
        }
    }
}
