namespace LongSeqService.Api.OpenAi;

/// <summary>The OpenAI fine-tuning surface's OpenAPI document (<c>/openapi/openai.json</c>), apart from the tenant one.</summary>
public static class OpenAiSurface
{
    public const string Document = "openai";
}
