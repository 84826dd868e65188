using TorchSharp;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Model;

/// <summary>SwiGLU feed-forward: down_proj(silu(gate_proj(x)) · up_proj(x)).</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> gate_proj;
    private nn.Module<Tensor, Tensor> up_proj;
    private nn.Module<Tensor, Tensor> down_proj;

    public static readonly string[] ProjectionNames = ["gate_proj", "up_proj", "down_proj"];

    public Mlp(ModelConfig cfg, ScalarType dtype, Device? device) : base(nameof(Mlp))
    {
        if (cfg.HiddenAct != "silu")
            throw new NotSupportedException($"hidden_act '{cfg.HiddenAct}' is not supported; Llama/Qwen2 use 'silu'.");
        gate_proj = Projections.Linear(cfg.HiddenSize, cfg.IntermediateSize, false, dtype, device);
        up_proj = Projections.Linear(cfg.HiddenSize, cfg.IntermediateSize, false, dtype, device);
        down_proj = Projections.Linear(cfg.IntermediateSize, cfg.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    /// <summary>When set, the MLP runs over sequence tiles of this many tokens (<see cref="TiledMlp"/>), so the
    /// (T, intermediate) activations are never whole; set under gradient checkpointing.</summary>
    public int? TileTokens { get; set; }

    /// <summary>The LoRA dropout stream, replayed when a tile is recomputed in backward.</summary>
    public DropoutRandom? DropoutRandom { get; set; }

    /// <summary>ALST's tile rule (<see cref="Shared.Memory.MlpTile"/>): tiles of about hidden_size tokens.</summary>
    public static int DefaultTileTokens(ModelConfig cfg) => Shared.Memory.MlpTile.Tokens(cfg.HiddenSize);

    /// <param name="x">(B, T, H)</param>
    public override Tensor forward(Tensor x) =>
        TileTokens is { } tile && x.shape[1] > tile ? TiledMlp.Run(this, x, tile) : Untiled(x);

    /// <summary>(B, T, H) → (B, T, H) in one piece.</summary>
    internal Tensor Untiled(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gated = nn.functional.silu(gate_proj.call(x)) * up_proj.call(x);               // (B, T, I)
        return down_proj.call(gated).MoveToOuterDisposeScope();                            // (B, T, H)
    }

    /// <summary>The projection called <paramref name="name"/> (HF name, e.g. "up_proj").</summary>
    public nn.Module<Tensor, Tensor> GetProjection(string name) => name switch
    {
        "gate_proj" => gate_proj,
        "up_proj" => up_proj,
        "down_proj" => down_proj,
        _ => throw new ArgumentException($"Mlp has no projection '{name}'."),
    };

    /// <summary>Swaps a projection (LoRA wrapping, merging) keeping the registration order.</summary>
    public void SetProjection(string name, nn.Module<Tensor, Tensor> module)
    {
        switch (name)
        {
            case "gate_proj": gate_proj = module; break;
            case "up_proj": up_proj = module; break;
            case "down_proj": down_proj = module; break;
            default: throw new ArgumentException($"Mlp has no projection '{name}'.");
        }
        Projections.Reregister(this, ProjectionNames, GetProjection);
    }
}
