using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// Gradient checkpointing of one decoder layer as a custom autograd function.
/// Forward: runs the layer with grad disabled (nothing inside is saved except the layer input).
/// Backward: re-runs the very same <c>layer.call</c> with grad enabled — so the IAttention is called
/// again through the same code path (under sequence parallelism that repeats the ring exchange, in
/// the same order on every rank) — and backpropagates the incoming gradient through it.
/// The layer's trainable parameters are explicit inputs of the function: their gradients are returned
/// to the autograd engine (which accumulates them), and the function stays in the graph even when the
/// layer input needs no gradient (LoRA with frozen embeddings).
/// Dropout masks are replayed by restoring the model's <see cref="DropoutRandom"/> state.
/// </summary>
public sealed class LayerCheckpoint : autograd.SingleTensorFunction<LayerCheckpoint>
{
    // Argument layout of apply(): the non-tensor objects first, then the tensors.
    private const int LayerArg = 0, RandomArg = 1, HiddenArg = 2, CosArg = 3, SinArg = 4, FirstParamArg = 5;

    private sealed record State(DecoderLayer Layer, DropoutRandom? Random, Tensor? RandomState, Parameter[] Trainable, bool InputNeedsGrad);

    public override string Name => nameof(LayerCheckpoint);

    /// <summary>Runs <paramref name="layer"/> on (B, T, H) <paramref name="hidden"/> without keeping its activations.</summary>
    public static Tensor Run(DecoderLayer layer, Tensor hidden, Tensor cos, Tensor sin, DropoutRandom? random)
    {
        var trainable = layer.parameters().Where(p => p.requires_grad).ToArray();
        var args = new object?[FirstParamArg + trainable.Length];
        args[LayerArg] = layer;
        args[RandomArg] = random;
        args[HiddenArg] = hidden;
        args[CosArg] = cos;
        args[SinArg] = sin;
        for (var i = 0; i < trainable.Length; i++) args[FirstParamArg + i] = trainable[i];
        return apply(args!);
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var layer = (DecoderLayer)vars[LayerArg];
        var random = vars[RandomArg] as DropoutRandom;
        var hidden = (Tensor)vars[HiddenArg];
        var cos = (Tensor)vars[CosArg];
        var sin = (Tensor)vars[SinArg];
        var trainable = vars.Skip(FirstParamArg).Cast<Parameter>().ToArray();

        ctx.save_for_backward([hidden, cos, sin]);
        ctx.save_data("state", new State(layer, random, random?.Snapshot(), trainable, hidden.requires_grad));
        return layer.call(hidden, cos, sin);                                               // grad is off here
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var state = (State)ctx.get_data("state");
        var saved = ctx.get_saved_variables();
        var grads = new List<Tensor?>(new Tensor?[FirstParamArg + state.Trainable.Length]);

        using var gradMode = enable_grad();
        var x = saved[0].detach().requires_grad_(state.InputNeedsGrad);
        var randomNow = state.Random?.Snapshot();
        state.Random?.Restore(state.RandomState);
        Tensor y;
        try
        {
            y = state.Layer.call(x, saved[1], saved[2]);                                   // the same path as forward
        }
        finally
        {
            state.Random?.Restore(randomNow);
        }

        var inputs = new List<Tensor>();
        if (state.InputNeedsGrad) inputs.Add(x);
        inputs.AddRange(state.Trainable);
        var inputGrads = autograd.grad([y], inputs, [gradOutput], allow_unused: true);

        var next = 0;
        if (state.InputNeedsGrad) grads[HiddenArg] = Defined(inputGrads[next++]);
        for (var i = 0; i < state.Trainable.Length; i++) grads[FirstParamArg + i] = Defined(inputGrads[next++]);
        return grads!;
    }

    private static Tensor? Defined(Tensor? t) => t is null || t.IsInvalid ? null : t;
}
