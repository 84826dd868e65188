using LongSeqService.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

public class LossesTests
{
    /// <summary>−log softmax(row)[label] written out: log Σ exp(x_j) − x_label, with the max subtracted.</summary>
    private static double HandNll(double[] row, long label)
    {
        double max = row.Max();
        return max + Math.Log(row.Sum(x => Math.Exp(x - max))) - row[label];
    }

    [Fact]
    public void TokenNll_Float64_EqualsHandLogSoftmaxAndZeroAtIgnoredPositions()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(3, CPU);
        var logits = randn([2, 3, 5], dtype: ScalarType.Float64, generator: g) * 3;              // (B, T, V)
        long[,] labels = { { 4, -100, 0 }, { -100, 2, 1 } };
        var labelTensor = tensor(new long[] { 4, -100, 0, -100, 2, 1 }, [2, 3], ScalarType.Int64);

        var nll = Losses.TokenNll(logits, labelTensor);
        var sums = Losses.SequenceLogProbs(logits, labelTensor);

        Assert.Equal(ScalarType.Float64, nll.dtype);
        Assert.Equal([2L, 3L], nll.shape);
        var values = logits.data<double>().ToArray();
        for (int b = 0; b < 2; b++)
        {
            double seq = 0;
            for (int t = 0; t < 3; t++)
            {
                double expected = labels[b, t] == -100 ? 0 : HandNll(values[((b * 3 + t) * 5)..((b * 3 + t + 1) * 5)], labels[b, t]);
                Assert.Equal(expected, nll[b, t].item<double>(), 1e-13);
                seq -= expected;
            }
            Assert.Equal(seq, sums[b].item<double>(), 1e-13);
        }
        Assert.Equal(-sums.sum().item<double>(), Losses.SftLossSum(logits, labelTensor).item<double>(), 1e-13);
    }

    [Fact]
    public void TokenNll_BFloat16Logits_ComputedInFloat32()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(5, CPU);
        var logits = randn([1, 4, 7], generator: g).to(ScalarType.BFloat16);
        var labels = tensor(new long[] { 1, 2, 3, 4 }, [1, 4], ScalarType.Int64);

        var nll = Losses.TokenNll(logits, labels);

        Assert.Equal(ScalarType.Float32, nll.dtype);
        var reference = Losses.TokenNll(logits.to(ScalarType.Float64), labels);          // the same rounded logits, exactly
        Assert.True((nll.to(ScalarType.Float64) - reference).abs().max().item<double>() < 1e-5);
    }

    /// <summary>loss = −log σ(β·[(π_c − π_r) − (ref_c − ref_r)]), rewards β·(π − ref); values worked out by hand.</summary>
    [Fact]
    public void DpoLoss_FewPairs_EqualsHandComputedValuesAndGradient()
    {
        using var scope = NewDisposeScope();
        double beta = 0.1;
        double[] pc = [-10, -30, -5, -200], pr = [-12, -29, -5, -100], rc = [-11, -30, -6, -100], rr = [-11.5, -30, -4, -200];
        var policyChosen = tensor(pc, ScalarType.Float64).requires_grad_();
        var policyRejected = tensor(pr, ScalarType.Float64).requires_grad_();

        var r = DpoLoss.Compute(policyChosen, policyRejected, tensor(rc, ScalarType.Float64), tensor(rr, ScalarType.Float64), beta);

        // margins x = (pc − pr) − (rc − rr): 2 − 0.5 = 1.5;  −1 − 0 = −1;  0 − (−2) = 2;  −100 − 100 = −200
        double[] x = [1.5, -1, 2, -200];
        double[] expectedLoss = x.Select(m => Math.Log(1 + Math.Exp(-beta * m))).ToArray();   // −log σ(βx) = log(1 + e^(−βx))
        Assert.Equal(Math.Log(1 + Math.Exp(-0.15)), expectedLoss[0], 15);                      // the first one spelled out
        Assert.Equal(20 + Math.Log(1 + Math.Exp(-20)), expectedLoss[3], 12);                   // a large margin stays finite
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(expectedLoss[i], r.Losses[i].item<double>(), 12);
            Assert.Equal(beta * (pc[i] - rc[i]), r.ChosenRewards[i].item<double>(), 12);
            Assert.Equal(beta * (pr[i] - rr[i]), r.RejectedRewards[i].item<double>(), 12);
        }
        Assert.False(r.ChosenRewards.requires_grad);

        // d loss_i / d π_c = −β σ(−β x_i);  d loss_i / d π_r = +β σ(−β x_i)
        r.Losses.sum().backward();
        for (int i = 0; i < 4; i++)
        {
            double s = 1 / (1 + Math.Exp(beta * x[i]));
            Assert.Equal(-beta * s, policyChosen.grad![i].item<double>(), 12);
            Assert.Equal(beta * s, policyRejected.grad![i].item<double>(), 12);
        }
    }
}
