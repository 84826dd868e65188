namespace LongSeqService.Shared.Data;

/// <summary>
/// Token ids of one training sequence and its labels: the id itself where the model learns the token
/// (assistant answers and their end-of-turn token), <see cref="IgnoreIndex"/> everywhere else.
/// Labels are not shifted (Hugging Face convention: the loss or the collator shifts them).
/// </summary>
public sealed record EncodedSequence(int[] InputIds, int[] Labels)
{
    public const int IgnoreIndex = -100;

    public int Length => InputIds.Length;
    public int LabelCount => Labels.Count(l => l != IgnoreIndex);
}

/// <summary>A preference example: chosen and rejected sequences that share the same prompt tokens.</summary>
public sealed record EncodedPair(EncodedSequence Chosen, EncodedSequence Rejected, int PromptLength);

/// <summary>A dataset after tokenization. <see cref="Skipped"/> examples had no answer token left after cutoff.</summary>
public sealed record EncodedDataset<T>(IReadOnlyList<T> Items, int Skipped, IReadOnlyList<int> SkippedLines);
