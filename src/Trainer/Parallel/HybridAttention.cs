using LongSeqService.Trainer.Model;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel;

/// <summary>
/// Ulysses over groups of u consecutive ranks × zigzag ring over the R = N/u groups: the answer when
/// the heads don't divide N (only u must divide Hq). Rank g = j·u + i is member i of Ulysses group j
/// and member j of ring i.
/// Token layout: cut the sequence into 2R zigzag chunks; Ulysses group j owns chunks j and 2R−1−j
/// (its ring shard, in that order) and its member i holds the i-th 1/u of that shard. The Ulysses
/// all-to-all reassembles the ring shard on every member (with Hq/u heads), and the ring then runs
/// zigzag attention exactly as in 'zigzag-ring'. u = 1 is zigzag ring; u = N is Ulysses.
/// </summary>
public sealed class HybridAttention : IAttention
{
    private readonly UlyssesAttention _ulysses;

    public HybridAttention(ICollectives group, int ulyssesDegree, IAttentionKernel? kernel = null, AttentionTimer? timer = null)
    {
        var n = group.WorldSize;
        if (ulyssesDegree < 1 || n % ulyssesDegree != 0)
            throw new ArgumentException($"ulysses_degree ({ulyssesDegree}) must divide the group size ({n})");
        UlyssesDegree = ulyssesDegree;
        SequenceShards = n;
        Timer = timer ?? new AttentionTimer();
        var (u, j, i) = (ulyssesDegree, group.Rank / ulyssesDegree, group.Rank % ulyssesDegree);
        // Every rank splits in the same order (MPI's communicator split is collective).
        var ulyssesGroup = group.Split(Enumerable.Range(j * u, u).ToArray());
        var ringGroup = group.Split(Enumerable.Range(0, n / u).Select(m => m * u + i).ToArray());
        Ring = new RingAttention(ringGroup, RingLayout.Zigzag, kernel, Timer);
        _ulysses = new UlyssesAttention(ulyssesGroup, Ring, Timer);
    }

    public int UlyssesDegree { get; }

    public int SequenceShards { get; }

    public RingAttention Ring { get; }

    public AttentionTimer Timer { get; }

    public Tensor Forward(Tensor q, Tensor k, Tensor v) => _ulysses.Forward(q, k, v);
}
