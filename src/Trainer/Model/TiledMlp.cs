using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>
/// The MLP over sequence tiles (Snowflake ALST's TiledMLP) as a custom autograd function: forward runs the
/// tiles one after another with grad off and keeps only the (B, T, H) input; backward recomputes each tile
/// with grad on and backpropagates it at once, adding up the MLP's parameter gradients. So neither pass
/// holds more than one tile's (B, tile, intermediate) activations — under gradient checkpointing the
/// layer's recomputation would otherwise hold all of them. The MLP is per token, so tiles change no value.
/// LoRA dropout masks are replayed from the stream's state at the start of forward (tiles in the same order).
/// </summary>
public sealed class TiledMlp : autograd.SingleTensorFunction<TiledMlp>
{
    // Argument layout of apply(): the non-tensor objects first, then the tensors.
    private const int MlpArg = 0, TileArg = 1, InputArg = 2, FirstParamArg = 3;

    private sealed record State(Mlp Mlp, int Tile, Tensor? RandomState, Parameter[] Trainable, bool InputNeedsGrad);

    public override string Name => nameof(TiledMlp);

    /// <summary>(B, T, H) → (B, T, H) through <paramref name="mlp"/>, <paramref name="tile"/> tokens at a time.</summary>
    public static Tensor Run(Mlp mlp, Tensor x, int tile)
    {
        if (!is_grad_enabled()) return Tiles(mlp, x, tile);                                // nothing to keep: just the tiles
        var trainable = mlp.parameters().Where(p => p.requires_grad).ToArray();
        var args = new object[FirstParamArg + trainable.Length];
        args[MlpArg] = mlp;
        args[TileArg] = tile;
        args[InputArg] = x;
        for (var i = 0; i < trainable.Length; i++) args[FirstParamArg + i] = trainable[i];
        return apply(args);
    }

    /// <summary>Each tile through the untiled MLP, written into one (B, T, H) output.</summary>
    private static Tensor Tiles(Mlp mlp, Tensor x, int tile)
    {
        long t = x.shape[1];
        var y = empty_like(x);                                                             // (B, T, H)
        for (long start = 0; start < t; start += tile)
        {
            using var scope = NewDisposeScope();
            long c = Math.Min(tile, t - start);
            y.narrow(1, start, c).copy_(mlp.Untiled(x.narrow(1, start, c)));               // (B, c, H)
        }
        return y;
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (mlp, tile, x) = ((Mlp)vars[MlpArg], (int)vars[TileArg], (Tensor)vars[InputArg]);
        var trainable = vars.Skip(FirstParamArg).Cast<Parameter>().ToArray();
        ctx.save_for_backward([x]);
        ctx.save_data("state", new State(mlp, tile, mlp.DropoutRandom?.Snapshot(), trainable, x.requires_grad));
        return Tiles(mlp, x, tile);                                                        // grad is off here
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var s = (State)ctx.get_data("state");
        var x = ctx.get_saved_variables()[0];
        var grads = new List<Tensor?>(new Tensor?[FirstParamArg + s.Trainable.Length]);
        long t = x.shape[1];
        var dx = s.InputNeedsGrad ? empty_like(x) : null;                                  // (B, T, H)
        var dParams = new Tensor?[s.Trainable.Length];
        var random = s.Mlp.DropoutRandom;
        var randomNow = random?.Snapshot();
        random?.Restore(s.RandomState);
        try
        {
            using var gradMode = enable_grad();
            for (long start = 0; start < t; start += s.Tile)
            {
                using var scope = NewDisposeScope();
                long c = Math.Min(s.Tile, t - start);
                var xt = x.narrow(1, start, c).detach().requires_grad_(s.InputNeedsGrad);  // (B, c, H)
                var yt = s.Mlp.Untiled(xt);
                var inputs = new List<Tensor>();
                if (s.InputNeedsGrad) inputs.Add(xt);
                inputs.AddRange(s.Trainable);
                var g = autograd.grad([yt], inputs, [gradOutput.narrow(1, start, c).contiguous()], allow_unused: true);
                int next = 0;
                using (no_grad())
                {
                    if (dx is not null) dx.narrow(1, start, c).copy_(g[next++]);
                    for (var i = 0; i < s.Trainable.Length; i++, next++)
                    {
                        if (g[next] is not { IsInvalid: false } gi) continue;
                        if (dParams[i] is null) dParams[i] = gi.detach().clone().MoveToOuterDisposeScope();
                        else dParams[i]!.add_(gi);
                    }
                }
            }
        }
        finally
        {
            random?.Restore(randomNow);
        }
        grads[InputArg] = dx;
        for (var i = 0; i < s.Trainable.Length; i++) grads[FirstParamArg + i] = dParams[i];
        return grads!;
    }
}
