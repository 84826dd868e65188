using LongSeqService.Trainer.Parallel;
using LongSeqService.Trainer.Parallel.Mpi;
using LongSeqService.Trainer.Tests.Parallel;
using TorchSharp;
using TorchSharp.PyBridge;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>
/// The collectives over MPI (separate processes under mpiexec) against the same exercise in-process:
/// send/recv, all-reduce (including several gather rounds and a non-contiguous tensor), all-gather,
/// all-to-all, broadcast, split. Everything must be bit-identical, rank by rank — the all-reduce sums in
/// rank order in both worlds.
/// </summary>
public class MpiCollectivesTests
{
    [MpiTheory]
    [InlineData(2)]
    [InlineData(4)]
    public void CollectiveChecks_UnderMpiexec_BitIdenticalToInProcess(int ranks)
    {
        var dir = Directory.CreateTempSubdirectory("mpi-check-").FullName;
        try
        {
            using (var job = MpiJob.Start(ranks, ["mpi-check", "--out", dir], dir))
            {
                Assert.True(job.WaitForExit(60_000), "mpiexec did not finish within 60 s");
                Assert.True(job.ExitCode == 0, string.Join("\n", job.OutputTail));
            }
            var expected = InProcessWorld.Run(ranks, CollectiveChecks.Run, TimeSpan.FromSeconds(60));

            for (int r = 0; r < ranks; r++)
            {
                var actual = Safetensors.LoadStateDict(Path.Combine(dir, $"rank-{r}.safetensors"));
                Assert.Equal(expected[r].Keys.Order(), actual.Keys.Order());
                foreach (var (name, want) in expected[r])
                {
                    var got = actual[name];
                    Assert.True(got.dtype == want.dtype && got.shape.SequenceEqual(want.shape) && got.Identical(want),
                        $"rank {r} '{name}': MPI gave ({string.Join(", ", got.shape)}) {got.dtype}, in-process ({string.Join(", ", want.shape)}) {want.dtype}, values differ: {!got.shape.SequenceEqual(want.shape) || !got.Identical(want)}");
                }
            }
            // The exercise is not trivially equal everywhere: the all-reduce is the same on every rank, the receives are not.
            Assert.True(expected[0]["all_reduce_f32"].Identical(expected[ranks - 1]["all_reduce_f32"]));
            Assert.False(expected[0]["recv_f64"].Identical(expected[1]["recv_f64"]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [MpiFact]
    public void AllReduceSum_UnderMpiexec_EqualsRankOrderSumOfTheInputs()
    {
        // Hand-built reference for the one float32 all-reduce in the exercise: ((x0 + x1) + x2) + x3.
        var dir = Directory.CreateTempSubdirectory("mpi-check-").FullName;
        try
        {
            using (var job = MpiJob.Start(4, ["mpi-check", "--out", dir], dir))
                Assert.True(job.WaitForExit(60_000) && job.ExitCode == 0, string.Join("\n", job.OutputTail));
            var inputs = Enumerable.Range(0, 4)
                .Select(r => (torch.randn([1000], torch.ScalarType.Float64, generator: new torch.Generator((ulong)(300 + r) + 1)) * Math.Pow(10, 3 * r)).to(torch.ScalarType.Float32))
                .ToArray();
            var inRankOrder = ((inputs[0] + inputs[1]) + inputs[2]) + inputs[3];
            for (int r = 0; r < 4; r++)
                Assert.True(Safetensors.LoadStateDict(Path.Combine(dir, $"rank-{r}.safetensors"))["all_reduce_f32"].Identical(inRankOrder), $"rank {r}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
