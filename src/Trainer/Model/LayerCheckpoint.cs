using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Gradient checkpointing of one unit of the model (a decoder layer; under ZeRO stage 3 also the embedding,
/// the final norm and the LM head) as a custom autograd function.
/// Forward: runs the unit with grad disabled (nothing inside is saved except the unit's inputs).
/// Backward: re-runs the very same body with grad enabled — so the IAttention is called again through
/// the same code path (under sequence parallelism that repeats the ring exchange, in the same order on
/// every rank) — and backpropagates the incoming gradient through it.
/// The unit's trainable parameters are explicit inputs of the function, so that it stays in the graph even
/// when no input needs a gradient (LoRA with frozen embeddings); their gradients are added into <c>.grad</c>
/// here rather than returned (<see cref="HandedOver.AccumulateInto"/>: returned, the engine kept a copy).
/// Under ZeRO stage 3 (<see cref="IParameterGather"/>) the recomputation is where the weights are
/// gathered again: forward gathers, runs and releases; backward gathers, recomputes, reduce-scatters the
/// parameter gradients (none go back to the engine) and releases — so only one unit's full weights and
/// gradients are alive at a time, and stage 3 always recomputes, checkpointing or not.
/// Dropout masks are replayed by restoring the model's <see cref="DropoutRandom"/> state.
/// </summary>
public sealed class LayerCheckpoint : autograd.SingleTensorFunction<LayerCheckpoint>
{
    // Argument layout of apply(): the non-tensor objects first, then the inputs, then the trainable parameters.
    private const int UnitArg = 0, BodyArg = 1, RandomArg = 2, GatherArg = 3, InputCountArg = 4, FirstTensorArg = 5;

    private sealed record State(nn.Module Unit, Func<Tensor[], Tensor> Body, DropoutRandom? Random, Tensor? RandomState,
        IParameterGather? Gather, Parameter[] Trainable, bool[] InputNeedsGrad);

    public override string Name => nameof(LayerCheckpoint);

    /// <summary>Runs <paramref name="layer"/> on (B, T, H) <paramref name="hidden"/> without keeping its activations.</summary>
    public static Tensor Run(DecoderLayer layer, Tensor hidden, Tensor cos, Tensor sin, DropoutRandom? random, IParameterGather? gather = null) =>
        Run(layer, xs => layer.call(xs[0], xs[1], xs[2]), [hidden, cos, sin], random, gather);

    /// <summary>
    /// <paramref name="body"/> (the unit's forward on <paramref name="inputs"/>) checkpointed. With a gather and
    /// nothing to differentiate (no grad mode, or frozen weights and inputs that need no gradient: evaluation,
    /// a reference pass, LoRA's embedding) the weights are only gathered around the call.
    /// </summary>
    public static Tensor Run(nn.Module unit, Func<Tensor[], Tensor> body, Tensor[] inputs, DropoutRandom? random, IParameterGather? gather)
    {
        var trainable = unit.parameters().Where(p => p.requires_grad).ToArray();
        if (gather is not null && !(is_grad_enabled() && (trainable.Length > 0 || inputs.Any(x => x.requires_grad))))
        {
            gather.Gather(unit);
            try { return body(inputs); }
            finally { gather.Release(unit); }
        }
        var args = new object?[FirstTensorArg + inputs.Length + trainable.Length];
        args[UnitArg] = unit;
        args[BodyArg] = body;
        args[RandomArg] = random;
        args[GatherArg] = gather;
        args[InputCountArg] = inputs.Length;
        for (var i = 0; i < inputs.Length; i++) args[FirstTensorArg + i] = inputs[i];
        for (var i = 0; i < trainable.Length; i++) args[FirstTensorArg + inputs.Length + i] = trainable[i];
        return apply(args!);
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var unit = (nn.Module)vars[UnitArg];
        var body = (Func<Tensor[], Tensor>)vars[BodyArg];
        var random = vars[RandomArg] as DropoutRandom;
        var gather = vars[GatherArg] as IParameterGather;
        int count = (int)vars[InputCountArg];
        var inputs = vars.Skip(FirstTensorArg).Take(count).Cast<Tensor>().ToArray();
        var trainable = vars.Skip(FirstTensorArg + count).Cast<Parameter>().ToArray();

        ctx.save_for_backward([.. inputs]);
        ctx.save_data("state", new State(unit, body, random, random?.Snapshot(), gather, trainable, [.. inputs.Select(x => x.requires_grad)]));
        gather?.Gather(unit);
        try { return body(inputs); }                                                        // grad is off here
        finally { gather?.Release(unit); }
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        Training.MemoryProbe.Mark("unit_backward");
        HandedOver.ReleaseAll();
        var state = (State)ctx.get_data("state");
        var saved = ctx.get_saved_variables();
        int count = state.InputNeedsGrad.Length;
        var grads = new List<Tensor?>(new Tensor?[FirstTensorArg + count + state.Trainable.Length]);

        using var gradMode = enable_grad();
        // TorchSharp opens no dispose scope around a custom backward: without this one, the recomputed output and
        // (stage 3) the unit's full parameter gradients would stay attached to the micro-batch's scope until it ends.
        using var scope = NewDisposeScope();
        var xs = saved.Select((t, i) => state.InputNeedsGrad[i] ? t.detach().requires_grad_(true) : t).ToArray();
        var randomNow = state.Random?.Snapshot();
        state.Random?.Restore(state.RandomState);
        state.Gather?.Gather(state.Unit);
        try
        {
            Tensor y;
            try
            {
                y = state.Body(xs);                                                         // the same path as forward
            }
            finally
            {
                state.Random?.Restore(randomNow);
            }

            Training.MemoryProbe.Mark("unit_recomputed");
            var inputs = xs.Where((_, i) => state.InputNeedsGrad[i]).ToList();
            inputs.AddRange(state.Trainable);
            var inputGrads = autograd.grad([y], inputs, [gradOutput], allow_unused: true);

            var next = 0;
            for (var i = 0; i < count; i++)
                if (state.InputNeedsGrad[i]) grads[FirstTensorArg + i] = HandedOver.Gradient(Defined(inputGrads[next++])?.MoveToOuterDisposeScope());
            var parameterGrads = state.Trainable.Select(_ => Defined(inputGrads[next++])).ToArray();
            if (state.Gather is { } gather)
            {
                if (parameterGrads.Length > 0) gather.ReduceScatter(state.Unit, parameterGrads);   // then freed with this scope
            }
            else
                for (var i = 0; i < parameterGrads.Length; i++)
                    if (parameterGrads[i] is { } g) HandedOver.AccumulateInto(state.Trainable[i], g);   // none go back to the engine
        }
        finally
        {
            state.Gather?.Release(state.Unit);
            gradOutput.Dispose();                                                           // TorchSharp's wrapper, in the caller's scope otherwise
        }
        Training.MemoryProbe.Mark("unit_backward_end");
        return grads!;
    }

    private static Tensor? Defined(Tensor? t) => t is null || t.IsInvalid ? null : t;
}
