using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Memory;

/// <summary>
/// What a run does that decides each rank's memory: the parallel layout, the objective, the precision,
/// checkpointing. Built from a job spec with <see cref="FromSpec"/> or from the <c>trainer estimate</c> flags.
/// </summary>
public sealed record MemoryRequest
{
    /// <summary>Tokens of one sequence (cutoff_len), before the split over the sequence-parallel group.</summary>
    public required int SeqLen { get; init; }
    public int SequenceParallelSize { get; init; } = 1;
    public int DataParallelSize { get; init; } = 1;
    public SequenceParallelMode Mode { get; init; } = SequenceParallelMode.ZigzagRing;
    public int? UlyssesDegree { get; init; }
    public Stage Stage { get; init; } = Stage.Sft;
    public FinetuningType FinetuningType { get; init; } = FinetuningType.Full;
    public int LoraRank { get; init; } = 8;
    public string LoraTarget { get; init; } = "all";
    public bool PrecomputeRefLogps { get; init; }
    public bool Bf16 { get; init; }
    public bool GradientCheckpointing { get; init; }
    /// <summary>Sequences per rank per micro-batch (DPO: pairs, each two sequences).</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Model-state sharding over the world (ZeRO): 1 shards optimizer state, 2 also gradients, 3 also weights. The trainer builds 0, 1 and 2.</summary>
    public int ZeroStage { get; init; }
    /// <summary>ZeRO-Offload: optimizer state, float32 masters and the optimizer step live in host memory, not on the device. The trainer has none today.</summary>
    public bool OffloadOptimizer { get; init; }
    public LossHead LossHead { get; init; } = TrainerLossHead.Current;
    public long LossChunkBudgetBytes { get; init; } = LossChunk.DefaultBudgetBytes;

    public int WorldSize => SequenceParallelSize * DataParallelSize;
    public bool IsDpo => Stage == Stage.Dpo;
    public bool IsLora => FinetuningType == FinetuningType.Lora;
    /// <summary>DPO with full weights and no precomputed log-probs keeps a frozen copy of the model (LoRA's reference is the base itself).</summary>
    public bool HoldsReference => IsDpo && !IsLora && !PrecomputeRefLogps;

    /// <summary>The ulysses group size: N for ulysses, u (given or chosen as the trainer chooses it) for hybrid, 1 for the rings.</summary>
    public int UlyssesGroup(int heads) => Mode switch
    {
        SequenceParallelMode.Ulysses => SequenceParallelSize,
        SequenceParallelMode.Hybrid => UlyssesDegree ?? SequenceParallelRules.AutoUlyssesDegree(SequenceParallelSize, heads),
        _ => 1,
    };

    /// <summary>The job spec's settings; the sequence-parallel size given separately when it is being chosen (auto).</summary>
    public static MemoryRequest FromSpec(JobSpec spec, int? sequenceParallelSize = null) => new()
    {
        SeqLen = spec.CutoffLen, SequenceParallelSize = sequenceParallelSize ?? spec.SequenceParallelSize, DataParallelSize = spec.DataParallelSize,
        Mode = spec.SequenceParallelMode, UlyssesDegree = spec.UlyssesDegree, Stage = spec.Stage, FinetuningType = spec.FinetuningType,
        LoraRank = spec.LoraRank, LoraTarget = spec.LoraTarget, PrecomputeRefLogps = spec.PrecomputeRefLogps, Bf16 = spec.Bf16,
        GradientCheckpointing = spec.GradientCheckpointing, BatchSize = spec.PerDeviceTrainBatchSize, ZeroStage = spec.ZeroStage,
    };
}
