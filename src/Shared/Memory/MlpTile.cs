namespace LongSeqService.Shared.Memory;

/// <summary>
/// How many tokens one tile of the tiled MLP covers under gradient checkpointing (ALST's rule: about hidden_size
/// tokens, so a tile's (tile, I) activations are about the size of one (H, I) weight). Here, not in the trainer,
/// so the memory estimator and the trainer agree on it (as with <see cref="LossChunk"/>).
/// </summary>
public static class MlpTile
{
    /// <summary>Tiles never get smaller than this (matmuls stay efficient on small models).</summary>
    public const int MinTokens = 256;

    public static int Tokens(int hiddenSize) => Math.Max(hiddenSize, MinTokens);
}
