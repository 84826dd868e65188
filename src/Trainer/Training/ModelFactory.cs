using System.Text.Json;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Models;
using LongSeqService.Shared.Data;
using LongSeqService.Trainer.Data;
using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// Builds each rank's model replica the same way (weights, dtype, LoRA, checkpointing) and knows how
/// this run's weights are saved: the full model, or only the LoRA adapter in PEFT's layout.
/// </summary>
public sealed class ModelFactory(JobSpec spec, ScalarType dtype, string? tokenizerDir)
{
    /// <summary>Replica construction touches libtorch's global state (RNG, default dtype), so ranks build one at a time.</summary>
    private static readonly object BuildLock = new();

    public ScalarType DType => dtype;
    public bool IsLora => spec.FinetuningType == FinetuningType.Lora;

    /// <summary>The policy (trainable) and, when DPO needs one in memory, a frozen reference copy.</summary>
    public (CausalLM Policy, CausalLM? Reference) Create(IAttention attention, bool withReference)
    {
        lock (BuildLock)
        {
            var policy = Load(attention);
            if (IsLora)
                policy.ApplyLora(new LoraSettings(spec.LoraRank, spec.EffectiveLoraAlpha, spec.LoraDropout,
                    LoraSettings.ParseTargets(spec.LoraTarget), spec.Seed));
            policy.GradientCheckpointing = spec.GradientCheckpointing;
            CausalLM? reference = null;
            if (withReference)
            {
                reference = Load(attention);
                foreach (var p in reference.parameters()) p.requires_grad_(false);
                reference.eval();
            }
            return (policy, reference);
        }
    }

    private CausalLM Load(IAttention attention)
    {
        if (ModelShapes.IsShape(spec.ModelNameOrPath!))
            return new CausalLM(ShapeConfig(spec.ModelNameOrPath!, spec.RopeTheta), attention, dtype, initSeed: ShapeWeightSeed);
        var (model, _, _) = ModelLoader.Load(spec.ModelNameOrPath!, dtype, attention, ropeTheta: spec.RopeTheta);
        return model;
    }

    /// <summary>Seed of the random weights of <c>shape:NAME</c> models (every rank draws the same replica).</summary>
    public const long ShapeWeightSeed = 1234;

    /// <summary>
    /// The config of <c>shape:NAME</c> (a published config.json, no weights: the model gets random ones).
    /// What this trainer cannot build (a model_type or rope_scaling it does not know) is refused by
    /// <see cref="ModelShape.TryResolve"/>, the same check as for directories.
    /// </summary>
    public static ModelConfig ShapeConfig(string name, double? ropeTheta = null)
    {
        var json = ModelShapes.TryGetConfigJson(name) ?? throw new ArgumentException(ModelShapes.Unknown(name));
        if (ModelShape.TryResolve(name, out var error) is null) throw new NotSupportedException(error);
        var cfg = JsonSerializer.Deserialize<ModelConfig>(json)!;
        return ropeTheta is { } t ? cfg with { RopeTheta = t } : cfg;
    }

    /// <summary>A checkpoint's model files: the adapter for LoRA (the base never changes), else the whole
    /// model; and the tokenizer files, so a checkpoint loads on its own (as <c>job:&lt;id&gt;/checkpoint-N</c>).</summary>
    public void SaveCheckpoint(CausalLM model, string dir)
    {
        SaveWeights(model, dir);
        CopyTokenizer(dir);
    }

    private void SaveWeights(CausalLM model, string dir)
    {
        if (IsLora) LoraAdapters.Save(model, dir, spec.ModelNameOrPath!);
        else ModelSaver.Save(model, dir);
    }

    public void LoadWeights(CausalLM model, string dir)
    {
        if (IsLora) LoraAdapters.Load(model, dir);
        else ModelLoader.LoadWeights(model, dir);
    }

    /// <summary>The run's result in output_dir, Hugging Face style: weights (or adapter) plus the tokenizer files.</summary>
    public void SaveFinal(CausalLM model, string outputDir)
    {
        RunFence.BeforeWrite();
        SaveWeights(model, outputDir);
        if (IsLora) ModelSaver.SaveConfig(model, outputDir);
        CopyTokenizer(outputDir);
    }

    private void CopyTokenizer(string dir)
    {
        foreach (var f in tokenizerDir is null ? [] : new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
        {
            var src = Path.Combine(tokenizerDir!, f);
            if (File.Exists(src)) File.Copy(src, Path.Combine(dir, f), overwrite: true);
        }
    }
}
