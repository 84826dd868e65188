using LongSeqService.Trainer.Training;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = LongSeqService.Trainer.Training.AdamW;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Tests.Training;

/// <summary>
/// AdamW against the textbook update (Loshchilov &amp; Hutter; PyTorch's AdamW) written out per element in doubles:
/// w ← w·(1 − lr·λ);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;  w ← w − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε).
/// Weight decay applies to matrices only (HF's Trainer leaves biases and norms undecayed).
/// </summary>
public class AdamWTests
{
    private const double Beta1 = 0.9, Beta2 = 0.95, Eps = 1e-6, Decay = 0.1;

    private sealed class HandAdam(double[] w, bool decay)
    {
        public readonly double[] W = (double[])w.Clone();
        private readonly double[] _m = new double[w.Length], _v = new double[w.Length];
        private int _t;

        public void Step(double[] g, double lr)
        {
            _t++;
            for (int i = 0; i < W.Length; i++)
            {
                if (decay) W[i] *= 1 - lr * Decay;
                _m[i] = Beta1 * _m[i] + (1 - Beta1) * g[i];
                _v[i] = Beta2 * _v[i] + (1 - Beta2) * g[i] * g[i];
                double mHat = _m[i] / (1 - Math.Pow(Beta1, _t)), vHat = _v[i] / (1 - Math.Pow(Beta2, _t));
                W[i] -= lr * mHat / (Math.Sqrt(vHat) + Eps);
            }
        }
    }

    [Fact]
    public void TwoUpdates_Float64_MatchTextbookFormula()
    {
        using var scope = NewDisposeScope();
        double[] w0 = [0.5, -1.25, 2.0, 0.125], b0 = [0.3, -0.7];
        double[][] gw = [[0.1, -0.2, 3.0, 1e-7], [-0.05, 0.4, 2.5, -1e-7]];
        double[][] gb = [[1.0, -0.001], [0.5, 0.002]];
        double[] lrs = [1e-2, 5e-3];
        var weight = new Parameter(tensor(w0, [2, 2], ScalarType.Float64));
        var bias = new Parameter(tensor(b0, ScalarType.Float64));
        using var adam = new AdamW([("layer.weight", weight), ("layer.bias", bias)], Beta1, Beta2, Eps, Decay);
        var (handW, handB) = (new HandAdam(w0, decay: true), new HandAdam(b0, decay: false));

        for (int s = 0; s < 2; s++)
        {
            weight.grad = tensor(gw[s], [2, 2], ScalarType.Float64);
            bias.grad = tensor(gb[s], ScalarType.Float64);
            adam.Update(lrs[s]);
            handW.Step(gw[s], lrs[s]);
            handB.Step(gb[s], lrs[s]);

            var w = weight.detach().flatten().data<double>().ToArray();
            var b = bias.detach().data<double>().ToArray();
            for (int i = 0; i < 4; i++) Assert.Equal(handW.W[i], w[i], 1e-15);
            for (int i = 0; i < 2; i++) Assert.Equal(handB.W[i], b[i], 1e-15);
        }
        Assert.Equal(2, adam.Step);
        // The first step moves every coordinate by about lr (Adam's sign-like first step), decay included.
        Assert.NotEqual(w0[0], weight[0, 0].item<double>());
    }

    [Fact]
    public void Update_BFloat16Parameter_UpdatesFloat32MasterAndRoundsIntoWeights()
    {
        using var scope = NewDisposeScope();
        // 1 + 1e-4 is not representable in bf16 (spacing 2^-7 near 1): only the fp32 master can accumulate small steps.
        var p = new Parameter(ones(3, dtype: ScalarType.BFloat16));
        using var adam = new AdamW([("norm.weight", p)], Beta1, Beta2, Eps, 0);
        var hand = new HandAdam([1, 1, 1], decay: false);
        for (int s = 0; s < 3; s++)
        {
            p.grad = full(3, -1.0, dtype: ScalarType.BFloat16);
            adam.Update(1e-4);
            hand.Step([-1, -1, -1], 1e-4);
        }
        var master = adam.StateDict()["norm.weight.master"];
        Assert.Equal(ScalarType.Float32, master.dtype);
        Assert.Equal((float)hand.W[0], master[0].item<float>(), 1e-6);                  // ≈ 1.0003: three steps of 1e-4
        Assert.True(p.eq(master.to(ScalarType.BFloat16)).all().item<bool>());            // the weights are its rounding
        Assert.Equal(1.0f, p[0].to(ScalarType.Float32).item<float>());                   // which is still 1 in bf16
    }

    [Fact]
    public void LoadStateDict_ThenUpdate_ContinuesExactlyAsTheOriginal()
    {
        using var scope = NewDisposeScope();
        double[] w0 = [0.5, -1.25, 2.0, 0.125];
        var a = new Parameter(tensor(w0, [2, 2], ScalarType.Float64));
        var b = new Parameter(tensor(w0, [2, 2], ScalarType.Float64));
        using var first = new AdamW([("w", a)], Beta1, Beta2, Eps, Decay);
        using var second = new AdamW([("w", b)], Beta1, Beta2, Eps, Decay);

        a.grad = tensor(new[] { 0.1, -0.2, 0.3, -0.4 }, [2, 2], ScalarType.Float64);
        first.Update(1e-2);
        using (no_grad()) b.copy_(a);
        second.LoadStateDict(first.StateDict(), first.Step);
        var g = tensor(new[] { -0.3, 0.2, 0.1, 0.05 }, [2, 2], ScalarType.Float64);
        a.grad = g; b.grad = g.clone();
        first.Update(1e-2);
        second.Update(1e-2);

        Assert.True(a.eq(b).all().item<bool>());
        Assert.Throws<InvalidDataException>(() => { second.LoadStateDict(new Dictionary<string, Tensor>(), 1); });
    }
}

/// <summary>
/// TorchSharp passes a Scalar's native handle and does not keep the managed Scalar alive during the call,
/// so an implicit temporary (<c>t / 2.0</c>) can be finalized by the GC while the op still reads it
/// ("Unknown scalar type", or a wrong value). Optimizer updates on several threads with the finalizer
/// kept busy must neither fail nor differ from the same updates done quietly.
/// A stress test: it caught the bug in about one run of five before the fix, and takes seconds.
/// </summary>
[Trait("Category", "Slow")]
public class AdamWConcurrencyTests
{
    [Fact]
    public void Update_ManyThreadsWhileGarbageCollecting_SameResultAsQuietRun()
    {
        double[] Train()
        {
            using var scope = NewDisposeScope();
            // Tensors built from arrays: the test itself must not create implicit Scalars (full(…, 0.1) would).
            static Tensor Filled(double v) => tensor(Enumerable.Repeat(v, 16).ToArray(), [4, 4], ScalarType.Float64);
            var ps = Enumerable.Range(0, 8).Select(i => new Parameter(Filled(0.1 * (i + 1)))).ToArray();
            using var adam = new AdamW(ps.Select((p, i) => ($"p{i}", (Tensor)p)), 0.9, 0.999, 1e-8, 0.01);
            for (int s = 0; s < 3000; s++)
            {
                foreach (var (p, i) in ps.Select((p, i) => (p, i))) p.grad = Filled(Math.Sin(s + i));
                adam.Update(1e-3);
            }
            return ps.SelectMany(p => p.detach().flatten().data<double>().ToArray()).ToArray();
        }

        var expected = Train();
        var stop = false;
        var collector = new Thread(() => { while (!Volatile.Read(ref stop)) { GC.Collect(); GC.WaitForPendingFinalizers(); } });
        collector.Start();
        try
        {
            var results = new double[4][];
            var errors = new Exception?[4];
            var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
            {
                try { results[t] = Train(); }
                catch (Exception e) { errors[t] = e; }        // (an exception escaping a thread would end the test host)
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
            Assert.All(errors, e => Assert.Null(e));
            Assert.All(results, r => Assert.Equal(expected, r));
        }
        finally
        {
            Volatile.Write(ref stop, true);
            collector.Join();
        }
    }
}
