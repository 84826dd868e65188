using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// A .NET exception thrown from a custom autograd backward crosses the native autograd engine and
/// terminates the process. Parallel backwards block on peers, so they can fail (a peer died, a
/// timeout): this guard aborts the world (peers stop waiting), keeps the exception as the world's
/// failure, and returns a gradient of an impossible shape so that libtorch itself raises a catchable
/// error from this rank's <c>.backward()</c>.
/// </summary>
internal static class AutogradFailure
{
    /// <summary>The last exception a guarded backward on this thread swallowed (the engine only reports a shape error).</summary>
    [ThreadStatic] public static Exception? LastFailure;

    public static List<Tensor> Guard(ICollectives? group, Tensor firstInput, int inputCount, Func<List<Tensor>> backward)
    {
        try
        {
            return backward();
        }
        catch (Exception e)
        {
            LastFailure = e;
            group?.Abort(e);
            // One more dimension than the input: never broadcastable to it, so the engine rejects it.
            var impossible = torch.zeros(Enumerable.Repeat(2L, (int)firstInput.dim() + 1).ToArray());
            var grads = new List<Tensor> { impossible };
            for (var i = 1; i < inputCount; i++) grads.Add(null!);
            return grads;
        }
    }
}
