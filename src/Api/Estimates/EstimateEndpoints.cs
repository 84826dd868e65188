using System.Text.Json.Nodes;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Memory;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LongSeqService.Api.Estimates;

/// <summary>
/// POST /v1/estimates: a job spec (the keys of POST /v1/jobs; dataset optional) → each rank's predicted memory by
/// term, the sequence-parallel size <c>auto</c> would pick on the registered hosts, and whether some host holds it.
/// For the dashboard's new-job form, as the user edits.
/// </summary>
public static class EstimateEndpoints
{
    public static void MapEstimateApi(this IEndpointRouteBuilder app) =>
        app.MapPost("/v1/estimates", Estimate).WithName("estimateJobMemory").ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).WithTags("Estimates").WithSummary("Predicted per-rank memory of a job spec")
            .RequireAuthorization(Policies.Tenant).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);

    public static async Task<Results<Ok<JsonObject>, ProblemHttpResult>> Estimate(JsonObject body, ServiceDb db, CancellationToken ct)
    {
        JobSpec spec;
        try { spec = JobSpecParser.FromJson(body, extraAllowed: ["idempotency_key", "priority"]); }
        catch (JobSpecException e) { return Problems.Invalid(e.Errors, "The job spec is not valid"); }
        if (string.IsNullOrWhiteSpace(spec.ModelNameOrPath)) return Problems.Invalid("model_name_or_path", "required: shape:NAME, builtin:NAME or a local Hugging Face directory");
        if (ModelDims.Resolve(spec.ModelNameOrPath, out var modelError) is not { } model) return Problems.Invalid("model_name_or_path", modelError!);
        var hosts = await JobMemory.HostsAsync(db, ct);
        if (JobMemory.Check(spec, hosts) is not { } check) return Problems.Invalid("sequence_parallel_size", "must be at least 1, or auto");
        var auto = spec.SequenceParallelSize == SequenceParallelAuto.Auto ? check : JobMemory.Check(spec with { SequenceParallelSize = SequenceParallelAuto.Auto }, hosts);
        // auto with no host reporting memory has no size: show one rank's share at N = 1.
        int n = Math.Max(1, check.Spec.SequenceParallelSize);
        var request = MemoryRequest.FromSpec(check.Spec, n);
        var o = MemoryEstimateJson.ToJson(check.Estimate ?? MemoryModel.Estimate(model, request), request);
        o["sequence_parallel_size"] = n;
        o["auto_sequence_parallel_size"] = auto?.AutoSize;
        o["slot_memory_bytes"] = check.BudgetBytes;
        o["fits"] = check.Error is null;
        o["message"] = check.Error?.Message ?? check.Note;
        return TypedResults.Ok(o);
    }
}
