namespace LongSeqService.Scheduler.Data;

/// <summary>A model directory an administrator made available to every tenant under a name
/// (<c>POST /v1/models</c>). Tenants name it; only the service knows <see cref="Path"/>.</summary>
public sealed class RegisteredModel
{
    public required string Name { get; set; }
    /// <summary>The absolute server path of the Hugging Face directory (config.json, *.safetensors, tokenizer.json).</summary>
    public required string Path { get; set; }
    public string? Description { get; set; }
    public DateTime CreatedAt { get; set; }
}
