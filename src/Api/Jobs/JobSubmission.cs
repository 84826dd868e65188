using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Estimates;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Models;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Scheduler.Placement;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Datasets;
using LongSeqService.Shared.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Jobs;

/// <summary>
/// POST /v1/jobs: the job spec (LLaMA-Factory keys) plus optional <c>idempotency_key</c> and
/// <c>priority</c>. Everything is checked before the job exists — keys, values, the model's shape
/// against the sequence-parallel layout, the datasets (comma lists of ids, each this tenant's and the right kind for the stage), and
/// that some registered host could ever hold the gang — and every problem comes back as 422 keyed by field.
/// </summary>
public static class JobSubmission
{
    private static readonly string[] Extra = ["idempotency_key", "priority"];
    public const int MaxIdempotencyKey = 200;
    /// <summary>Keys the service sets itself.</summary>
    private static readonly string[] ServiceOwned = [.. JobSpecKeys.All.Where(k => k.ServiceOwned).Select(k => k.Name)];

    /// <param name="describe">Sets what the caller's surface adds to a new job (the OpenAI surface's suffix and metadata), before it is saved.</param>
    public static async Task<Results<Created<JobDto>, Ok<JobDto>, ProblemHttpResult>> Submit(
        JsonObject body, ClaimsPrincipal user, ServiceDb db, ModelRegistry models, PlacementTrigger placement, CancellationToken ct,
        IJobNotifier? notifier = null, Action<Job>? describe = null)
    {
        var tenant = user.TenantId();
        var errors = new List<SpecError>();
        string? idempotencyKey = null;
        int priority = 0;
        if (body["idempotency_key"] is { } k)
        {
            if (k.GetValueKind() != JsonValueKind.String || k.GetValue<string>() is not { Length: > 0 and <= MaxIdempotencyKey } key) errors.Add(new("idempotency_key", $"must be a string of 1 to {MaxIdempotencyKey} characters"));
            else idempotencyKey = key;
        }
        if (body["priority"] is { } p)
        {
            if (p.GetValueKind() != JsonValueKind.Number || !p.AsValue().TryGetValue<int>(out priority) || priority is < -100 or > 100)
                errors.Add(new("priority", "must be a whole number from -100 to 100 (higher is placed first)"));
        }
        foreach (var key in ServiceOwned)
            if (body.ContainsKey(key)) errors.Add(new(key, "set by the service; remove it (outputs are under the job, resumption is automatic)"));

        JobSpec spec;
        try { spec = JobSpecParser.FromJson(body, extraAllowed: Extra.Concat(ServiceOwned)); }
        catch (JobSpecException e) { return Problems.Invalid(errors.Concat(e.Errors), "The job spec is not valid"); }

        // A name from the registry, never a server path; the job keeps the name, the host gets the path.
        ResolvedModel? model = null;
        if (!string.IsNullOrWhiteSpace(spec.ModelNameOrPath))
        {
            (model, var modelError) = await models.ResolveAsync(spec.ModelNameOrPath, tenant, ct);
            if (modelError != null) errors.Add(new("model_name_or_path", modelError));
        }

        // The memory model (from the resolved model's config.json): resolves sequence_parallel_size auto,
        // and refuses what no registered host can hold.
        var memory = model is null ? null : JobMemory.Check(spec with { ModelNameOrPath = model.Path }, await JobMemory.HostsAsync(db, ct));
        if (memory?.Error is { } tooBig) errors.Add(tooBig);
        else if (memory != null) spec = memory.Spec with { ModelNameOrPath = spec.ModelNameOrPath };

        if (idempotencyKey != null && await Replay(db, tenant, idempotencyKey, spec, priority, ct) is { } replay) return replay;
        errors.AddRange(JobSpecValidator.Validate(spec, model?.Shape));
        if (spec.DatasetDir != null) errors.Add(new("dataset_dir", "the API reads uploaded datasets only: remove dataset_dir and give dataset ids (POST /v1/datasets)"));
        var datasetIds = await CheckDatasets(db, tenant, spec, spec.Dataset, "dataset", errors, ct);
        await CheckDatasets(db, tenant, spec, spec.EvalDataset, "eval_dataset", errors, ct);
        if (spec.WorldSize >= 1)
        {
            var largest = await db.HostSlots.GroupBy(s => s.HostId).Select(g => (int?)g.Count()).MaxAsync(ct) ?? 0;
            // Larger than any host: it may span the hosts that join spanning worlds (an MPI host name), all together.
            var spanning = spec.WorldSize > largest ? await db.HostSlots.CountAsync(s => db.Hosts.Any(h => h.Id == s.HostId && h.MpiHost != null), ct) : 0;
            if (spec.WorldSize > largest && spec.WorldSize > spanning)
                errors.Add(new(spec.DataParallelSize > 1 ? "data_parallel_size" : "sequence_parallel_size",
                    largest == 0 ? "no trainer host is registered, so no job can be placed; start one (trainer host --api … --token …)"
                                 : $"the job needs {spec.WorldSize} slots on one host (sequence_parallel_size × data_parallel_size) and the largest registered host has {largest}; use at most {largest}"
                                   + (spanning > 0 ? $" (or at most {spanning}, across the hosts that join spanning worlds)" : " (hosts started with --mpi-host may hold one job's world together)")));
        }
        if (errors.Count > 0) return Problems.Invalid(errors, "The job spec is not valid");

        var now = DateTime.UtcNow;
        var job = new Job
        {
            Id = Guid.CreateVersion7(), TenantId = tenant, State = JobStates.Queued, Spec = JobSpecParser.ToJson(spec).ToJsonString(),
            Model = spec.ModelNameOrPath!, ModelPath = model!.Path, Stage = spec.Stage.Wire(), DatasetId = string.Join(",", datasetIds), SequenceParallelSize = spec.SequenceParallelSize,
            DataParallelSize = spec.DataParallelSize, WorldSize = spec.WorldSize, RankMemoryBytes = memory?.Estimate?.PeakBytes, Priority = priority, IdempotencyKey = idempotencyKey,
            CreatedAt = now, UpdatedAt = now,
        };
        describe?.Invoke(job);
        db.Jobs.Add(job);
        JobEvent[] events =
        [
            new() { JobId = job.Id, At = now, FromState = null, ToState = JobStates.Validating, Reason = "submitted" },
            new() { JobId = job.Id, At = now, FromState = JobStates.Validating, ToState = JobStates.Queued,
                Reason = $"spec, model, dataset and capacity checked; needs {spec.WorldSize} slot(s) on one host" + (memory?.Note is { } note ? "; " + note : "") },
        ];
        db.JobEvents.AddRange(events);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) when (idempotencyKey != null)
        {
            // A concurrent request with the same idempotency key inserted first: answer with its job.
            db.ChangeTracker.Clear();
            if (await Replay(db, tenant, idempotencyKey, spec, priority, ct) is { } again) return again;
            throw;
        }
        // The first two transitions happen inside this request; a tenant's subscribers hear them as they hear every other one.
        if (notifier != null)
            foreach (var e in events) await notifier.StateChangedAsync(tenant, new JobStateMessage(job.Id, e.ToState, e.FromState, e.Reason, e.At));
        placement.Request();
        return TypedResults.Created($"/v1/jobs/{job.Id}", job.ToDto());
    }

    /// <summary>
    /// The datasets of a comma list of ids (LLaMA-Factory's <c>dataset: a,b</c>), each this tenant's and of the
    /// kind the stage trains on; returns the ids. Never a server path: the trainer gets each file from its id.
    /// </summary>
    private static async Task<List<string>> CheckDatasets(ServiceDb db, Guid tenant, JobSpec spec, string? list, string field, List<SpecError> errors, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(list)) return [];
        var ids = DatasetIds(list);
        var found = await db.Datasets.AsNoTracking().Where(d => ids.Contains(d.Id) && d.TenantId == tenant).ToDictionaryAsync(d => d.Id, ct);
        foreach (var id in ids)
        {
            if (!found.TryGetValue(id, out var dataset)) { errors.Add(new(field, $"no dataset '{id}'; upload one with POST /v1/datasets and use its id")); continue; }
            if (spec.Stage == Stage.Dpo && !dataset.IsPreference) errors.Add(new(field, $"stage dpo needs preference data (chosen/rejected); {dataset.Id} ({dataset.Name}) has none"));
            if (spec.Stage != Stage.Dpo && dataset.IsPreference) errors.Add(new(field, $"{dataset.Id} ({dataset.Name}) is preference data; use stage dpo, or an {spec.Stage.Wire().ToUpperInvariant()} dataset"));
            if (spec.Stage == Stage.Sft && dataset.Format == DatasetFormats.Text) errors.Add(new(field, $"{dataset.Id} ({dataset.Name}) is pre-training text; use stage pt"));
            if (spec.Formatting != null && spec.Formatting != dataset.Format) errors.Add(new("formatting", $"{dataset.Id} is {dataset.Format}, not {spec.Formatting}; omit formatting to use the detected one"));
        }
        return ids;
    }

    /// <summary>The ids of a <c>dataset</c> / <c>eval_dataset</c> value: comma-separated, in order.</summary>
    public static List<string> DatasetIds(string list) => [.. list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];

    /// <summary>The job already created under this key: 200 with it, or 409 when the spec differs.</summary>
    private static async Task<Results<Created<JobDto>, Ok<JobDto>, ProblemHttpResult>?> Replay(ServiceDb db, Guid tenant, string key, JobSpec spec, int priority, CancellationToken ct)
    {
        var existing = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.TenantId == tenant && j.IdempotencyKey == key, ct);
        if (existing == null) return null;
        if (!JsonNode.DeepEquals(JsonNode.Parse(existing.Spec), JobSpecParser.ToJson(spec)) || existing.Priority != priority)
            return Problems.Conflict($"idempotency_key '{key}' was used for job {existing.Id} with a different spec; use a new key");
        return TypedResults.Ok(existing.ToDto());
    }
}
