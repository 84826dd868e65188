using System.Text.Json;
using LongSeqService.Shared.Models;
using LongSeqService.Trainer.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LongSeqService.Trainer.Tests.Model.ModelTestKit;

namespace LongSeqService.Trainer.Tests.Model;

/// <summary>
/// Each decoder family and each rope_scaling type against a forward pass written here from Hugging
/// Face's modeling and <c>modeling_rope_utils.py</c> formulas, in plain float64 tensor algebra (no module
/// of the trainer), and the inverse-frequency tables against values worked out by hand.
/// </summary>
public class ArchitectureReferenceTests
{
    private static JsonElement Json(string s) => JsonDocument.Parse(s).RootElement.Clone();

    private static ModelConfig Config(string type, string? ropeScaling = null, int maxPositions = 16) =>
        Micro(qwen: false) with
        {
            ModelType = type,
            HeadDimOverride = type == "qwen3" ? 6 : null,                                 // 4 heads × 6 ≠ hidden 16
            AttentionBias = type == "qwen2" ? null : false,
            TieWordEmbeddings = type is "qwen2" or "qwen3",
            MaxPositionEmbeddings = maxPositions,
            RopeScaling = ropeScaling is null ? null : Json(ropeScaling),
        };

    public static TheoryData<string, string?> Families => new()
    {
        { "qwen3", null },
        { "mistral", null },
        { "qwen2", null },
        { "llama", """{"rope_type": "linear", "factor": 4.0}""" },
        { "llama", """{"type": "dynamic", "factor": 3.0}""" },                      // legacy "type" key
        { "llama", """{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8}""" },
        { "qwen2", """{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8}""" },
        { "qwen3", """{"rope_type": "yarn", "factor": 8.0, "beta_fast": 16, "beta_slow": 2, "mscale": 0.8, "mscale_all_dim": 0.5, "truncate": false}""" },
        { "qwen3", """{"rope_type": "dynamic", "factor": 2.0}""" },
    };

    [Theory]
    [MemberData(nameof(Families))]
    public void Logits_FamilyAndRopeScaling_MatchHfFormulasInFloat64(string type, string? ropeScaling)
    {
        using var scope = NewDisposeScope();
        var cfg = Config(type, ropeScaling);
        using var model = new CausalLM(cfg, new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        Perturb(model, seed: 4);
        var ids = Ids(2, 24, cfg.VocabSize, seed: 5);                                     // 24 > max_position_embeddings 16
        var pos = Positions(2, 24);

        var logits = model.call(ids, pos);
        var reference = ReferenceLogits(cfg, Params(model), ids, pos);

        Assert.True(MaxAbsDiff(logits, reference) < 1e-11, $"max |Δ| = {MaxAbsDiff(logits, reference):E2}");
        Assert.True(reference.abs().max().item<double>() > 1e-3);                     // not a vacuous comparison
    }

    [Fact]
    public void Logits_DynamicNtk_ShortSequenceIsPlainRopeLongOneIsNot()
    {
        using var scope = NewDisposeScope();
        var dynamic = Config("llama", """{"rope_type": "dynamic", "factor": 2.0}""");
        using var scaled = new CausalLM(dynamic, new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        using var plain = new CausalLM(dynamic with { RopeScaling = null }, new SdpaAttention(), ScalarType.Float64, initSeed: 3);
        var ids = Ids(1, 24, dynamic.VocabSize, seed: 5);

        // Up to max_position_embeddings dynamic NTK is plain RoPE; beyond it the base grows with the length.
        Assert.True(MaxAbsDiff(scaled.call(ids[.., ..16], Positions(1, 16)), plain.call(ids[.., ..16], Positions(1, 16))) < 1e-12);
        Assert.True(MaxAbsDiff(scaled.call(ids, Positions(1, 24)), plain.call(ids, Positions(1, 24))) > 1e-6);
    }

    // ---- inverse frequencies: hand-checked values (D = 8, θ = 10⁴, so plain inv_freq = 1, 0.1, 0.01, 0.001) ----

    public static TheoryData<string, long, double[], double> HandChecked => new()
    {
        // linear: every frequency / factor.
        { """{"rope_type": "linear", "factor": 4.0}""", 0, [0.25, 0.025, 0.0025, 0.00025], 1.0 },
        // dynamic, length 32 over max 16, factor 2: base = 10⁴·(2·32/16 − 1)^(8/6) = 43267.487…
        { """{"rope_type": "dynamic", "factor": 2.0}""", 32, [1.0, 0.0693361274350635, 0.00480749856769136, 1.0 / 3000], 1.0 },
        // dynamic at or below max_position_embeddings: plain.
        { """{"rope_type": "dynamic", "factor": 2.0}""", 10, [1.0, 0.1, 0.01, 0.001], 1.0 },
        // llama3 (orig 64, low 1, high 4 → wavelength bounds 64 and 16): 2π kept; 62.8 blended with
        // smooth = (64/62.83 − 1)/3; 628 and 6283 divided by 8.
        { """{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}""", 0,
          [1.0, 0.013042256043820465, 0.00125, 0.000125], 1.0 },
        // yarn (orig 64, β 32/1): correction dims −0.497 → 0 and 1.008 → 2, ramp [0, ½, 1, 1];
        // attention factor 0.1·ln 4 + 1.
        { """{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}""", 0, [1.0, 0.0625, 0.0025, 0.00025], 1.138629436111989 },
    };

    [Theory]
    [MemberData(nameof(HandChecked))]
    public void InverseFrequencies_HandWorkedValues_Match(string scaling, long seqLen, double[] expected, double attention)
    {
        var rope = RopeScaling.Parse(Json(scaling), out var error);
        Assert.Null(error);

        var inv = RopeScaling.InverseFrequencies(rope, dim: 8, theta: 10000, maxPositionEmbeddings: 16, seqLen);

        Assert.Equal(expected.Length, inv.Length);
        for (int i = 0; i < inv.Length; i++) Assert.Equal(expected[i], inv[i], 1e-12);
        Assert.Equal(attention, RopeScaling.AttentionScaling(rope), 1e-12);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void InverseFrequencies_RealisticDims_MatchTheTestsOwnFormulas(string type, string? scaling)
    {
        _ = type;
        var rope = RopeScaling.Parse(scaling is null ? null : Json(scaling), out var error);
        Assert.Null(error);
        foreach (var (dim, theta, maxPos, len) in new[] { (128, 1e6, 32768, 131072L), (64, 5e5, 8192, 4096L), (16, 1e4, 16, 24L) })
        {
            var expected = InvFreq(scaling, dim, theta, maxPos, len);
            var actual = RopeScaling.InverseFrequencies(rope, dim, theta, maxPos, len);
            for (int i = 0; i < dim / 2; i++) Assert.Equal(expected.Inv[i], actual[i], expected.Inv[i] * 1e-12);
            Assert.Equal(expected.Attention, RopeScaling.AttentionScaling(rope), 1e-12);
        }
    }

    [Theory]
    [InlineData("""{"rope_type": "longrope", "factor": 4.0}""", "longrope")]
    [InlineData("""{"type": "su", "factor": 4.0}""", "'su'")]
    [InlineData("""{"rope_type": "linear"}""", "positive factor")]
    [InlineData("""{"rope_type": "llama3", "factor": 8.0}""", "low_freq_factor")]
    [InlineData("[1, 2]", "object")]
    public void Parse_UnusableRopeScaling_OneLineNamingTheProblem(string scaling, string expected)
    {
        Assert.Null(RopeScaling.Parse(Json(scaling), out var error));
        Assert.Contains(expected, error);
        Assert.DoesNotContain("\n", error!);
    }

    [Fact]
    public void Parse_NullOrDefault_IsPlainRope()
    {
        Assert.Null(RopeScaling.Parse(null, out var e1));
        Assert.Null(RopeScaling.Parse(Json("null"), out var e2));
        Assert.Null(RopeScaling.Parse(Json("""{"rope_type": "default", "rope_theta": 10000}"""), out var e3));
        Assert.Null(e1 ?? e2 ?? e3);
    }

    // ---- the reference: HF's formulas, written out ----

    /// <summary>inv_freq and the cos/sin factor per HF's _compute_*_parameters (transformers 5: yarn's factor as given,
    /// original_max_position_embeddings defaulting to max_position_embeddings).</summary>
    private static (double[] Inv, double Attention) InvFreq(string? scaling, int dim, double theta, int maxPos, long seqLen)
    {
        var plain = new double[dim / 2];
        for (int i = 0; i < dim / 2; i++) plain[i] = 1.0 / Math.Pow(theta, (2.0 * i) / dim);
        if (scaling is null) return (plain, 1.0);
        var s = Json(scaling);
        double Get(string k, double dflt) => s.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : dflt;
        string kind = s.TryGetProperty("rope_type", out var rt) ? rt.GetString()! : s.GetProperty("type").GetString()!;
        double factor = Get("factor", 1);
        switch (kind)
        {
            case "linear":
                return (plain.Select(f => f / factor).ToArray(), 1.0);
            case "dynamic":
            {
                double len = seqLen > maxPos ? seqLen : maxPos;
                double b = theta * Math.Pow(factor * len / maxPos - (factor - 1), (double)dim / (dim - 2));
                var inv = new double[dim / 2];
                for (int i = 0; i < dim / 2; i++) inv[i] = 1.0 / Math.Pow(b, (2.0 * i) / dim);
                return (inv, 1.0);
            }
            case "llama3":
            {
                double old = Get("original_max_position_embeddings", 0), lo = Get("low_freq_factor", 0), hi = Get("high_freq_factor", 0);
                var inv = new double[dim / 2];
                for (int i = 0; i < dim / 2; i++)
                {
                    double wavelen = 2 * Math.PI / plain[i];
                    double scaled = wavelen > old / lo ? plain[i] / factor : plain[i];
                    bool medium = !(wavelen < old / hi) && !(wavelen > old / lo);
                    double smooth = (old / wavelen - lo) / (hi - lo);
                    inv[i] = medium ? (1 - smooth) * scaled / factor + smooth * scaled : scaled;
                }
                return (inv, 1.0);
            }
            default: // yarn
            {
                double original = Get("original_max_position_embeddings", maxPos);
                double mscale = Get("mscale", 0), mscaleAll = Get("mscale_all_dim", 0);
                double GetMscale(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
                double attention = s.TryGetProperty("attention_factor", out var af) ? af.GetDouble()
                    : mscale != 0 && mscaleAll != 0 ? GetMscale(factor, mscale) / GetMscale(factor, mscaleAll) : GetMscale(factor, 1);
                double betaFast = Get("beta_fast", 32), betaSlow = Get("beta_slow", 1);
                bool truncate = !(s.TryGetProperty("truncate", out var tr) && tr.ValueKind == JsonValueKind.False);
                double Dim(double rot) => dim * Math.Log(original / (rot * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = Dim(betaFast), high = Dim(betaSlow);
                if (truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
                low = Math.Max(low, 0);
                high = Math.Min(high, dim - 1);
                if (low == high) high += 0.001;
                var inv = new double[dim / 2];
                for (int i = 0; i < dim / 2; i++)
                {
                    double posFreq = Math.Pow(theta, (2.0 * i) / dim);
                    double ramp = Math.Min(Math.Max((i - low) / (high - low), 0), 1);
                    double extrapolationFactor = 1 - ramp;
                    inv[i] = 1 / (factor * posFreq) * (1 - extrapolationFactor) + 1 / posFreq * extrapolationFactor;
                }
                return (inv, attention);
            }
        }
    }

    private static Tensor Rms(Tensor x, Tensor w, double eps) => x * (x.pow(2).mean([-1L], keepdim: true) + eps).rsqrt() * w;

    private static Tensor Linear(Dictionary<string, TorchSharp.Modules.Parameter> p, string name, Tensor x) =>
        p.TryGetValue(name + ".bias", out var b) ? x.matmul(p[name + ".weight"].t()) + b : x.matmul(p[name + ".weight"].t());

    /// <summary>LlamaModel / MistralModel / Qwen2Model / Qwen3Model forward, eager attention, float64.</summary>
    private static Tensor ReferenceLogits(ModelConfig cfg, Dictionary<string, TorchSharp.Modules.Parameter> p, Tensor ids, Tensor pos)
    {
        using var noGrad = no_grad();
        long b = ids.shape[0], t = ids.shape[1];
        int hq = cfg.NumAttentionHeads, hkv = cfg.KeyValueHeads, d = cfg.HeadDim;
        var (invValues, attention) = InvFreq(cfg.RopeScaling?.GetRawText(), d, cfg.RopeTheta, cfg.MaxPositionEmbeddings, pos.max().item<long>() + 1);
        var freqs = pos.to_type(ScalarType.Float64).unsqueeze(-1) * tensor(invValues);   // (B, T, D/2)
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                    // (B, 1, T, D)
        var (cos, sin) = (emb.cos() * attention, emb.sin() * attention);
        Tensor Rope(Tensor x) => x * cos + cat([x[.., .., .., (d / 2)..].neg(), x[.., .., .., ..(d / 2)]], -1) * sin;
        var mask = ones(t, t, dtype: ScalarType.Bool).tril().logical_not();

        var h = p["model.embed_tokens.weight"].index_select(0, ids.flatten()).view(b, t, -1);
        for (int i = 0; i < cfg.NumHiddenLayers; i++)
        {
            var l = $"model.layers.{i}.";
            var x = Rms(h, p[l + "input_layernorm.weight"], cfg.RmsNormEps);
            var q = Linear(p, l + "self_attn.q_proj", x).view(b, t, hq, d);
            var k = Linear(p, l + "self_attn.k_proj", x).view(b, t, hkv, d);
            var v = Linear(p, l + "self_attn.v_proj", x).view(b, t, hkv, d).transpose(1, 2);
            if (cfg.ModelType == "qwen3")
            {
                q = Rms(q, p[l + "self_attn.q_norm.weight"], cfg.RmsNormEps);
                k = Rms(k, p[l + "self_attn.k_norm.weight"], cfg.RmsNormEps);
            }
            q = Rope(q.transpose(1, 2));
            k = Rope(k.transpose(1, 2)).repeat_interleave(hq / hkv, dim: 1);
            v = v.repeat_interleave(hq / hkv, dim: 1);
            var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(d);                     // (B, Hq, T, T)
            var y = scores.masked_fill(mask, double.NegativeInfinity).softmax(-1).matmul(v);
            h = h + Linear(p, l + "self_attn.o_proj", y.transpose(1, 2).reshape(b, t, hq * d));
            var m = Rms(h, p[l + "post_attention_layernorm.weight"], cfg.RmsNormEps);
            var gate = Linear(p, l + "mlp.gate_proj", m);
            h = h + Linear(p, l + "mlp.down_proj", gate * gate.sigmoid() * Linear(p, l + "mlp.up_proj", m));
        }
        h = Rms(h, p["model.norm.weight"], cfg.RmsNormEps);
        return h.matmul((p.TryGetValue("lm_head.weight", out var head) ? head : p["model.embed_tokens.weight"]).t());
    }
}
