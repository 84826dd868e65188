using LongSeqService.Shared.Jobs;

namespace LongSeqService.Shared.Memory;

/// <summary>
/// Each rank's peak bytes from a model's config.json alone, counted the way the trainer allocates:
/// what autograd saves per token (<see cref="LayerBytesPerToken"/>), what the loss head holds, what the
/// ring and all-to-all move, and the optimizer step's temporaries. The peak is what is always resident
/// (framework, weights, optimizer state, reference model) plus the largest of five moments of a step:
/// the loss backward, the LM head backward, the first layer backward, the end of backward, the optimizer step.
/// Per rank means one process per rank (launch: processes, or one device each).
/// </summary>
public static class MemoryModel
{
    /// <summary>
    /// A rank process's own memory before any model: the .NET runtime, libtorch and its thread pools, the
    /// compiled attention kernel, MPI. Measured on this machine's CPU build (docs/benchmarks.md, "memory
    /// model"): a rank's baseline minus its weights and optimizer state (170.7 MiB tiny-llama, 170.9 MiB tiny-qwen2).
    /// </summary>
    public const long FrameworkFloorBytes = 170L << 20;

    /// <summary>
    /// What the first training step adds whatever its size (autograd's engine threads, their malloc arenas,
    /// collective buffers): the intercept of the measured peak-above-baseline against tokens per rank, whose
    /// slope the per-token terms below predict (docs/benchmarks.md: 31 ± 4 MiB over 8 configurations).
    /// </summary>
    public const long FrameworkStepBytes = 32L << 20;

    /// <summary>What the clip-norm holds per element it sums: the float64 copy and its square (8 + 8 bytes), for
    /// one slice of <see cref="ClipNormSliceElements"/> elements at a time.</summary>
    public const long ClipNormBytesPerParameter = 16;

    /// <summary>The clip-norm sums each gradient a slice at a time (ModelStates.SquaredSum).</summary>
    public const long ClipNormSliceElements = 1L << 24;

    public static MemoryEstimate Estimate(ModelDims m, MemoryRequest r)
    {
        if (r.SeqLen < 1 || r.SequenceParallelSize < 1 || r.DataParallelSize < 1 || r.BatchSize < 1)
            throw new ArgumentException("seq_len, the parallel sizes and the batch size must be at least 1", nameof(r));
        if (r.ZeroStage is < 0 or > 3) throw new ArgumentException($"zero_stage must be 0, 1, 2 or 3 (got {r.ZeroStage})", nameof(r));
        int n = r.SequenceParallelSize, w = r.WorldSize;
        long b = r.Bf16 ? 2 : 4;
        // The collator pads every row to a multiple of 2N (the zigzag chunks); DPO rows are chosen + rejected.
        long rows = (long)r.BatchSize * (r.IsDpo ? 2 : 1);
        long padded = (r.SeqLen + 2L * n - 1) / (2L * n) * (2L * n);
        long t = rows * padded / n;
        long trainable = r.IsLora ? m.LoraParameters(r.LoraRank, LoraTargets(r.LoraTarget)) : m.Parameters;
        long Shard(long bytes, int stage) => r.ZeroStage >= stage ? (bytes + w - 1) / w : bytes;
        string Sharded(int stage) => r.ZeroStage >= stage ? $", ÷ {w} ranks (ZeRO-{r.ZeroStage})" : "";

        var resident = new List<MemoryTerm>
        {
            new("framework", FrameworkFloorBytes, "runtime, libtorch, kernels (measured)"),
            new("framework_step", FrameworkStepBytes, "the first step's fixed runtime allocations (measured)"),
            new("weights", Shard((m.Parameters + (r.IsLora ? trainable : 0)) * b, 3),
                $"{m.Parameters:N0} parameters{(r.IsLora ? $" + {trainable:N0} LoRA" : "")} × {b} B{Sharded(3)}"),
            new("optimizer_state", r.OffloadOptimizer ? 0 : Shard(trainable * (8 + (r.Bf16 ? 4 : 0)), 1),
                $"AdamW moments (2 × 4 B){(r.Bf16 ? " + float32 master (4 B)" : "")} × {trainable:N0} trainable{Sharded(1)}{(r.OffloadOptimizer ? ", offloaded to host memory" : "")}"),
        };
        if (r.HoldsReference) resident.Add(new("reference_model", Shard(m.Parameters * b, 3), $"frozen copy for DPO × {b} B{Sharded(3)}"));

        var gradients = new MemoryTerm("gradients", Shard(trainable * b, 2), $"{trainable:N0} trainable × {b} B{Sharded(2)}");
        // Stage 3 reduce-scatters into a partition buffer allocated with the states, held from the start (offloaded with
        // the optimizer, as DeepSpeed's offload_optimizer keeps the gradient partitions in host memory); below stage 3
        // the gradients appear during backward.
        if (r.ZeroStage >= 3)
            resident.Add(r.OffloadOptimizer ? gradients with { Bytes = 0, Detail = gradients.Detail + ", offloaded to host memory" } : gradients);
        MemoryTerm[] stepGradients = r.ZeroStage >= 3 ? [] : [gradients];
        var headGradient = new MemoryTerm("head_gradient", r.IsLora ? 0 : (long)m.Vocab * m.Hidden * b, "the LM head's gradient, first to appear");
        long layer = LayerBytesPerToken(m, r);
        // ZeRO-3 recomputes every layer in backward (that is where it gathers the weights again), checkpointing or not.
        bool recomputes = r.GradientCheckpointing || r.ZeroStage >= 3;
        var activations = recomputes
            ? new MemoryTerm("activations", t * (m.Layers * m.Hidden * b + StackBytesPerToken(m, b)),
                $"{t:N0} tokens × ({m.Layers} layer inputs × {m.Hidden * b} B + final norm, RoPE tables) (checkpointed)")
            : new MemoryTerm("activations", t * (m.Layers * layer + StackBytesPerToken(m, b)),
                $"{t:N0} tokens × ({m.Layers} layers × {layer:N0} B + final norm, RoPE tables)");
        // One layer at work: its transients (held by the layer's dispose scope) — and under checkpointing its
        // recomputed activations too, whose MLP part is one tile's (the MLP runs over tiles then) — plus what the attention moves.
        long recomputed = t * (layer - MlpBytesPerToken(m, b)) + Math.Min(t, MlpTileTokens(m)) * MlpBytesPerToken(m, b);
        var working = recomputes
            ? new MemoryTerm("layer_working_set", 2 * recomputed, $"one layer's recomputed activations (the MLP's of one {MlpTileTokens(m)}-token tile) and their gradients")
            : new MemoryTerm("layer_working_set", t * layer, "one layer's transients");
        // What a custom backward hands to the engine (a checkpointed layer's input gradient, the fused loss's hidden
        // gradient) is released as soon as the engine holds it, and the parameters' gradients go straight into .grad
        // (Trainer/Model/HandedOver): before that, the micro-batch scope kept every layer's input gradient and a second
        // copy of every layer's and the head's weight gradients to the end of backward (measured with LONGSEQ_MEMORY_PROBE).
        // Backward runs from the last layer to the first: while a layer works, the layers after it have their .grad.
        var laterLayerGradients = new MemoryTerm("later_layer_gradients", r.IsLora || r.ZeroStage >= 3 ? 0 : (m.Layers - 1) * m.LayerParameters * b,
            $"the .grad of the {m.Layers - 1} layers whose backward is done, at the first layer's");
        var embeddingGradient = new MemoryTerm("embedding_gradient", r.IsLora || r.ZeroStage >= 3 || !m.TiedEmbeddings ? 0 : (long)m.Vocab * m.Hidden * b,
            "the embedding's dense (V, H) gradient before it is added into the tied weight's .grad");
        var attention = AttentionTerms(m, r, t, b);
        // ZeRO-3 gathers one unit at a time: a layer's weights (and its gradient before the reduce-scatter) while that
        // layer runs; the (V, H) head for the loss; the embedding (and its dense gradient) at the end of backward.
        if (r.ZeroStage >= 3) attention.Add(new("zero3_gather", 2 * m.LayerParameters * b, "one layer's gathered weights and gradient"));
        var gatheredHead = new MemoryTerm("zero3_gathered_head", r.ZeroStage >= 3 ? (long)m.Vocab * m.Hidden * b : 0, "the LM head's weights, gathered for the loss (ZeRO-3)");
        var gatheredEmbedding = new MemoryTerm("zero3_gathered_embedding", r.ZeroStage >= 3 ? (long)m.Vocab * m.Hidden * b * (r.IsLora ? 1 : 2) : 0,
            $"the embedding's weights{(r.IsLora ? "" : " and dense gradient")}, gathered for its backward (ZeRO-3)");
        var (lossPeak, lossHeld, lossGradient) = LossTerms(m, r, t, b);

        var moments = new List<MemoryMoment>
        {
            // The loss's own peak (every copy of the logits at once) comes before the head's gradient exists;
            // when the log-softmax is freed, the logits' gradient and the head's gradient are alive together.
            new("loss_backward", [activations, lossPeak, gatheredHead, .. lossHeld.Where(x => x.Name != "logits_held")]),
            new("head_backward", [activations, .. lossHeld, lossGradient, headGradient, gatheredHead]),
            new("layer_backward", [activations, working, .. attention, .. lossHeld, laterLayerGradients,
                .. (r.ZeroStage >= 3 ? Array.Empty<MemoryTerm>() : [headGradient])]),   // ZeRO-3: reduce-scattered after the head's backward
            // The embedding's backward, after every layer's: their working sets are freed, what the scope keeps is not.
            new("backward_end", [.. stepGradients, .. lossHeld, embeddingGradient, gatheredEmbedding,
                .. (recomputes ? Array.Empty<MemoryTerm>() : [working, .. attention])]),
            new("optimizer_step", [.. stepGradients, .. r.OffloadOptimizer ? [] : UpdateTerms(r, m, trainable, b, Shard)]),
        };
        return new MemoryEstimate(resident, moments, t);
    }

    /// <summary>
    /// What autograd keeps per token for one decoder layer, without checkpointing. Per RMSNorm: the float32
    /// input it squares (the input itself in float32), the normalised value and the weighted output. Attention:
    /// rotated q and k, v, the output, its (B, T, Hq·D) copy for o_proj, the float32 log-sum-exp. MLP: gate,
    /// silu(gate), up, and their product.
    /// </summary>
    public static long LayerBytesPerToken(ModelDims m, MemoryRequest r)
    {
        long b = r.Bf16 ? 2 : 4;
        long q = (long)m.Heads * m.HeadDim, kv = (long)KvHeadsHeld(m, r) * m.HeadDim;
        long norm = NormCastBytes(m, b) + 2 * b * m.Hidden;
        long attention = b * (3 * q + 2 * kv) + 4L * m.Heads;
        long mlp = MlpBytesPerToken(m, b);
        return 2 * norm + attention + mlp;
    }

    /// <summary>The SwiGLU MLP's share of <see cref="LayerBytesPerToken"/>: gate, silu(gate), up, their product.</summary>
    private static long MlpBytesPerToken(ModelDims m, long b) => 4 * b * m.Intermediate;

    /// <summary>Tokens per MLP tile under checkpointing: the trainer's rule (<see cref="MlpTile"/>).</summary>
    public static int MlpTileTokens(ModelDims m) => MlpTile.Tokens(m.Hidden);

    /// <summary>Per token outside the layers: the final norm (its output feeds the head) and the RoPE cos/sin tables.</summary>
    private static long StackBytesPerToken(ModelDims m, long b) => NormCastBytes(m, b) + 2 * b * m.Hidden + 2L * m.HeadDim * b;

    /// <summary>RMSNorm's float32 copy of its input, kept for backward: none for a float32 model, where the cast is the
    /// tensor itself (counting it over-predicted float32 runs without checkpointing by ~4%).</summary>
    private static long NormCastBytes(ModelDims m, long b) => b == 4 ? 0 : 4L * m.Hidden;

    /// <summary>Ulysses repeats K/V heads up to lcm(Hkv, u) so that they divide among the group; the rings hold Hkv.</summary>
    private static int KvHeadsHeld(ModelDims m, MemoryRequest r)
    {
        int u = r.UlyssesGroup(m.Heads);
        return u <= 1 ? m.KvHeads : m.KvHeads / Gcd(m.KvHeads, u) * u;
    }

    /// <summary>The attention's transients in one layer: grouped-query K/V repeated for the kernel, the ring's K/V
    /// in flight (forward: current + incoming; backward: those and the travelling float32 dK/dV, the dQ accumulator),
    /// the Ulysses all-to-all's send and receive copies.</summary>
    private static List<MemoryTerm> AttentionTerms(ModelDims m, MemoryRequest r, long t, long b)
    {
        long q = (long)m.Heads * m.HeadDim, kv = (long)KvHeadsHeld(m, r) * m.HeadDim;
        int u = r.UlyssesGroup(m.Heads), ring = r.SequenceParallelSize / u;
        var terms = new List<MemoryTerm> { new("attention_kernel", t * (m.Heads > m.KvHeads ? 2 * q * b : 0) + t * 4 * q, "K/V repeated to the query heads, float32 output/dQ accumulators") };
        if (ring > 1) terms.Add(new("ring_buffers", t * (4 * kv * b + 4 * kv * 4), $"ring of {ring}: 2 K/V shards in flight + 2 float32 dK/dV shards"));
        if (u > 1) terms.Add(new("all_to_all_buffers", t * 2 * b * (q + 2 * kv), $"Ulysses group of {u}: send and receive copies of q, k, v"));
        return terms;
    }

    /// <summary>
    /// The LM head and loss. Full: the whole (T, V) logits (model dtype) — kept by the micro-batch's scope through
    /// the whole backward — their float32 cast (bf16), the log-softmax, its gradient and the logits' gradient.
    /// Chunked: two float32 (chunk, V) buffers (the chunk's logits/probabilities and d(logits) in place; plus the bf16 logits).
    /// DPO also runs the reference forward, whose logits the same scope keeps.
    /// </summary>
    private static (MemoryTerm Peak, List<MemoryTerm> Held, MemoryTerm Gradient) LossTerms(ModelDims m, MemoryRequest r, long t, long b)
    {
        long v = m.Vocab, cast = r.Bf16 ? 4 : 0;
        var held = new List<MemoryTerm>();
        bool referencePass = r.IsDpo && !r.PrecomputeRefLogps;
        if (r.LossHead == LossHead.Full)
        {
            held.Add(new("logits_held", t * v * (b + cast), $"{t:N0} × {v:N0} logits{(r.Bf16 ? " + float32 cast" : "")}, alive through backward"));
            if (referencePass) held.Add(new("reference_logits", t * v * (b + cast), "the reference pass's logits, same scope"));
            return (new("loss_head", t * v * (b + cast + 12), $"full logits: {t:N0} × {v:N0} × ({b + cast} B kept + 3 float32 copies: log-softmax, its gradient, the logits' gradient)"),
                held, new("logits_gradient", t * v * (4 + (r.Bf16 ? 2 : 0)), "the logits' gradient (float32, and its bf16 cast) meeting the head's gradient"));
        }
        long chunk = Math.Min(LossChunk.Tokens(v, r.LossChunkBudgetBytes), t);
        // Forward keeps only a float32 log-sum-exp per token; a chunk's working set is its logits (model dtype),
        // their float32 statistics and d(logits) formed in place.
        var working = new MemoryTerm("loss_head", chunk * v * (2 * 4 + (r.Bf16 ? 2 : 0)), $"chunked: 2 float32 buffers of {chunk:N0} tokens × {v:N0}{(r.Bf16 ? " + the bf16 logits" : "")}");
        return (working, held, working);
    }

    /// <summary>The optimizer step's temporaries: the gradient sum's flat buffer (world &gt; 1), kept by the step's scope
    /// to its end, plus the larger of the clip-norm's float64 copies of one slice and AdamW's float32 denominator (and
    /// the float32 gradient for bf16) of one parameter at a time — the largest it updates.</summary>
    private static IEnumerable<MemoryTerm> UpdateTerms(MemoryRequest r, ModelDims m, long trainable, long b, Func<long, int, long> shard)
    {
        long sum = r.WorldSize > 1 ? shard(trainable * b, 2) : 0;
        long clip = Math.Min(shard(trainable, 2), ClipNormSliceElements) * ClipNormBytesPerParameter;
        long adam = Math.Min(shard(trainable, 1), m.LargestParameter) * (r.Bf16 ? 8 : 4);
        string buffer = sum > 0 ? "flat all-reduce buffer + " : "";
        yield return clip >= adam
            ? new MemoryTerm("step_temporaries", sum + clip, $"{buffer}clip-norm float64 copies of one slice ({ClipNormBytesPerParameter} B per element)")
            : new MemoryTerm("step_temporaries", sum + adam, buffer + "AdamW float32 denominator" + (r.Bf16 ? " and float32 gradient" : "") + " of the largest parameter it updates");
    }

    private static IReadOnlyCollection<string> LoraTargets(string target) => target == "all"
        ? JobSpecValidator.LoraTargets
        : target.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);
}
