using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// A fixed exercise of every collective on seeded inputs: run it over MPI (<c>trainer mpi-check</c>
/// under mpiexec) and in-process, and the results must be identical rank by rank. Inputs of very
/// different magnitudes make the all-reduce's addition order visible in the bits.
/// </summary>
public static class CollectiveChecks
{
    /// <summary>Runs every check on this rank; returns its results by name (tensors owned by the caller, outside any scope).</summary>
    public static Dictionary<string, Tensor> Run(ICollectives c)
    {
        int n = c.WorldSize, r = c.Rank, next = (r + 1) % n, previous = (r + n - 1) % n;
        var results = new Dictionary<string, Tensor>();
        using var scope = torch.NewDisposeScope();
        void Keep(string name, Tensor t) => results[name] = t.detach().contiguous().clone().DetachFromDisposeScope();

        // Point to point around the ring: a header-described receive, a receive into a buffer, a
        // non-contiguous tensor, and a handle the sender disposes right after sending.
        var a = Seeded(r, 3, 5);
        c.Send(a, next, tag: 7);
        var b = Seeded(100 + r, 4, 6).to(ScalarType.Float32).t();                              // (6, 4), not contiguous
        c.Send(b, next, tag: 8);
        var d = Seeded(200 + r, 2, 3);
        c.Send(d, next, tag: 9);
        d.Dispose();
        Keep("recv_f64", c.Recv(previous, tag: 7));
        var into = torch.zeros(6, 4, ScalarType.Float32);
        c.RecvInto(into, previous, tag: 8);
        Keep("recv_into_f32", into);
        Keep("recv_after_dispose", c.Recv(previous, tag: 9));

        var f32 = (Seeded(300 + r, 1000) * Math.Pow(10, 3 * r)).to(ScalarType.Float32);
        c.AllReduceSum(f32);
        Keep("all_reduce_f32", f32);
        var f64 = Seeded(400 + r, 7, 33).t();                                                  // in place on a non-contiguous tensor
        c.AllReduceSum(f64);
        Keep("all_reduce_f64_strided", f64);
        var big = Seeded(450 + r, 300_000);                                                     // several gather rounds
        c.AllReduceSum(big);
        Keep("all_reduce_f64_chunked", big);
        var bf16 = Seeded(500 + r, 64).to(ScalarType.BFloat16);
        c.AllReduceSum(bf16);
        Keep("all_reduce_bf16", bf16);

        // Reduce-scatter over uneven partitions (one empty; the longest takes several rounds), float32 with
        // magnitudes far apart (the order shows in the bits) and bf16; all-gather of the parts puts them back.
        long[] counts = [.. Enumerable.Range(0, n).Select(j => j == 1 ? 0L : 400_000L + 37 * j)];
        var scatterInput = (Seeded(1000 + r, counts.Sum()) * Math.Pow(10, 3 * r)).to(ScalarType.Float32);
        var part = c.ReduceScatterSum(scatterInput, counts);
        Keep("reduce_scatter_f32", part);
        Keep("all_gather_parts", c.AllGather(part, dim: 0));
        Keep("reduce_scatter_bf16", c.ReduceScatterSum(Seeded(1100 + r, 3 * n + 1).to(ScalarType.BFloat16), [.. Enumerable.Range(0, n).Select(j => j == 0 ? 4L : 3L)]));

        Keep("all_gather_dim1", c.AllGather(torch.full(2, 2, (double)r, ScalarType.Float64), dim: 1));
        Keep("all_gather_ragged_dim0", c.AllGather(Seeded(600 + r, r + 1, 3), dim: 0));
        Keep("all_gather_i64", c.AllGather(torch.tensor(new long[] { r, 10L * r }, ScalarType.Int64).unsqueeze(0), dim: 0));

        Keep("all_to_all", c.AllToAll(Seeded(700 + r, 2, 2 * n, 3, 2), scatterDim: 1, gatherDim: 2));
        Keep("all_to_all_f32", c.AllToAll(Seeded(800 + r, 4 * n, 3).to(ScalarType.Float32), scatterDim: 0, gatherDim: 1));

        var root = torch.full(4, r + 1.0);
        c.Broadcast(root, root: n - 1);
        Keep("broadcast", root);
        c.Barrier();

        // Sub-groups: the even ranks and the odd ranks (reversed, so group rank ≠ world rank order).
        var members = Enumerable.Range(0, n).Where(x => x % 2 == r % 2).ToArray();
        if (r % 2 == 1) Array.Reverse(members);
        var sub = c.Split(members);
        var s = Seeded(900 + r, 5) * Math.Pow(10, 2 * r);
        sub.AllReduceSum(s);
        Keep("split_all_reduce", s);
        Keep("split_rank", torch.tensor(new long[] { sub.Rank, sub.WorldSize }, ScalarType.Int64));
        return results;
    }

    private static Tensor Seeded(int seed, params long[] shape) =>
        torch.randn(shape, ScalarType.Float64, generator: new Generator((ulong)seed + 1));
}
