using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// One direction of a ring: send to rank r+1, receive from rank r−1. Sends are buffered (they return at
/// once), so posting the next send before computing the current block overlaps the two; time blocked
/// in receives is charged to the timer.
/// </summary>
internal sealed class RingChannel(ICollectives group, AttentionTimer timer, int tag)
{
    private int Next => (group.Rank + 1) % group.WorldSize;

    private int Previous => (group.Rank - 1 + group.WorldSize) % group.WorldSize;

    public void SendToNext(Tensor a, Tensor b)
    {
        group.Send(a, Next, tag);
        group.Send(b, Next, tag);
    }

    public (Tensor A, Tensor B) ReceiveFromPrevious() =>
        timer.TimeWait(() => (group.Recv(Previous, tag), group.Recv(Previous, tag)));
}
