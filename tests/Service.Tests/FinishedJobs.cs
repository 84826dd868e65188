using System.Net.Http.Json;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Shared.Data;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LongSeqService.Service.Tests;

/// <summary>Hugging Face directories as a trainer leaves them: config.json, model.safetensors, tokenizer.json
/// (the built-in tokenizer; the weights file holds only its header, nothing here loads it).</summary>
public static class ModelDirs
{
    public static string Write(string dir)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"),
            """{"model_type":"llama","hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":1024,"max_position_embeddings":4096,"tie_word_embeddings":false}""");
        // A header naming every tensor config.json implies (what the API's check reads), the data zeros.
        var dims = new LongSeqService.Shared.Models.DecoderDims("llama", 1024, 64, 96, 2, 8, 4, 8, TieWordEmbeddings: false, AttentionBias: null);
        var header = new System.Text.Json.Nodes.JsonObject();
        long offset = 0;
        foreach (var (name, shape) in LongSeqService.Shared.Models.ModelArchitectures.Parameters(dims))
        {
            long bytes = shape.Aggregate(4L, (a, b) => a * b);
            header[name] = new System.Text.Json.Nodes.JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new System.Text.Json.Nodes.JsonArray(shape.Select(x => (System.Text.Json.Nodes.JsonNode)x).ToArray()),
                ["data_offsets"] = new System.Text.Json.Nodes.JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), [.. BitConverter.GetBytes((long)headerBytes.Length), .. headerBytes, .. new byte[offset]]);
        File.Copy(Path.Combine(BuiltinTokenizer.EnsureCached(), "tokenizer.json"), Path.Combine(dir, "tokenizer.json"), overwrite: true);
        return dir;
    }
}

/// <summary>Jobs that trained to the end, as far as the API can tell: submitted, marked succeeded, their model on disk.</summary>
public static class FinishedJobs
{
    public static string Output(ServiceFactory factory, Guid job) => JobPaths.OutputDir(factory.Services.GetRequiredService<IOptions<LongSeqOptions>>().Value, job);

    public static async Task<JobDto> SucceededAsync(ServiceFactory factory, HttpClient client, DatasetDto dataset, params int[] checkpoints)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", new { model_name_or_path = "builtin:tiny-llama", dataset = dataset.Id, max_steps = 1 });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var job = (await response.Content.ReadFromJsonAsync<JobDto>(WireJson.Options))!;
        await using var scope = factory.Scope();
        await factory.Db(scope).Jobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobStates.Succeeded).SetProperty(j => j.FinishedAt, DateTime.UtcNow));
        ModelDirs.Write(Output(factory, job.Id));
        foreach (var step in checkpoints) ModelDirs.Write(Path.Combine(Output(factory, job.Id), $"checkpoint-{step}"));
        return job;
    }
}
