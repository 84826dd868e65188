using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Differentiable all-to-all: forward scatters <c>scatterDim</c> and gathers <c>gatherDim</c>; the
/// backward is the reverse all-to-all (the operation is a permutation of data across ranks, its adjoint
/// is the inverse permutation). Call through <see cref="Apply"/>.
/// </summary>
internal sealed class AllToAllFunction : autograd.MultiTensorFunction<AllToAllFunction>
{
    public override string Name => nameof(AllToAllFunction);

    public static Tensor Apply(Tensor x, ICollectives group, long scatterDim, long gatherDim, AttentionTimer timer) =>
        apply(x, new Route(group, scatterDim, gatherDim, timer))[0];

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (x, route) = ((Tensor)vars[0], (Route)vars[1]);
        ctx.save_data("route", route);
        ctx.save_data("rank", (long)x.dim());
        return [route.Timer.TimeForward(() => route.Timer.TimeWait(() => route.Group.AllToAll(x, route.ScatterDim, route.GatherDim)))];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var route = (Route)ctx.get_data("route");
        return AutogradFailure.Guard(route.Group, gradOutputs[0], 2, () =>
            [route.Timer.TimeBackward(() => route.Timer.TimeWait(() => route.Group.AllToAll(gradOutputs[0], route.GatherDim, route.ScatterDim))), null!]);
    }

    private sealed record Route(ICollectives Group, long ScatterDim, long GatherDim, AttentionTimer Timer);
}
