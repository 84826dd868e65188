using System.Security.Claims;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Api.Models;

/// <summary>/v1/models: the models a caller may name in <c>model_name_or_path</c> (see <see cref="ModelRegistry"/>);
/// administrators register and remove server directories under a name.</summary>
public static class ModelEndpoints
{
    public static void MapModelApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/models").WithTags("Models").RequireAuthorization(Policies.Tenant)
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        group.MapGet("", List).WithName("listModels")
            .WithSummary("Models this key may train from: built-ins, shapes, registered models, its own succeeded jobs and their checkpoints (paged)");
        group.MapGet("/{**name}", Get).WithName("getModel").ProducesProblem(StatusCodes.Status404NotFound)
            .WithSummary("One model by the name a job spec uses (job:<id>/checkpoint-<step> included; its slash may be sent encoded)");
        group.MapPost("", Register).WithName("registerModel").RequireAuthorization(Policies.Admin)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status409Conflict)
            .WithSummary("Register a server directory as a model every tenant may use (admin)");
        group.MapDelete("/{name}", Remove).WithName("deleteModel").RequireAuthorization(Policies.Admin)
            .WithSummary("Remove a registered model (admin); jobs already submitted keep the directory they resolved to");
    }

    /// <param name="after">The next_after of the previous page; omit it for the first page.</param>
    /// <param name="limit">Items per page, 1 to 500 (default 50).</param>
    private static async Task<Results<Ok<Page<ModelDto>>, ProblemHttpResult>> List(string? after, int? limit, ClaimsPrincipal user, ModelRegistry registry, CancellationToken ct)
    {
        if (Paging.Limit(limit, out var take) is { } bad) return bad;
        var all = await registry.ListAsync(user.TenantId(), user.IsAdmin(), ct);
        return Paging.Slice(all, after, take, m => m.Id) is { } page ? TypedResults.Ok(page) : Paging.BadCursor(after!, "a model id of this list");
    }

    /// <param name="name">The model's name, as a job spec's model_name_or_path gives it.</param>
    private static async Task<Results<Ok<ModelDto>, ProblemHttpResult>> Get(string name, ClaimsPrincipal user, ModelRegistry registry, ServiceDb db, CancellationToken ct)
    {
        name = Uri.UnescapeDataString(name);   // the router leaves an encoded slash (job:<id>%2Fcheckpoint-6) encoded
        var (model, error) = await registry.ResolveAsync(name, user.TenantId(), ct);
        if (model == null) return Problems.Status(StatusCodes.Status404NotFound, "No such model", error);
        var registered = model.Kind == ModelKinds.Registered ? await db.RegisteredModels.AsNoTracking().FirstAsync(r => r.Name == name, ct) : null;
        return TypedResults.Ok(ModelRegistry.Dto(model, registered, user.IsAdmin()));
    }

    private static async Task<Results<Created<ModelDto>, ProblemHttpResult>> Register(RegisterModelRequest request, ModelRegistry registry, ServiceDb db, CancellationToken ct)
    {
        var errors = new List<SpecError>();
        if (request.Name is not { } name || !ModelRegistry.RegisteredName().IsMatch(name))
            errors.Add(new("name", "required: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit (names with ':' belong to builtin:, shape: and job: models)"));
        if (request.Path is not { Length: > 0 and <= 4096 } path || path.Contains('\0') || !Path.IsPathFullyQualified(path))
            errors.Add(new("path", "required: the absolute path of a Hugging Face model directory on the server (config.json, *.safetensors, tokenizer.json)"));
        if (request.Description is { Length: > 1000 }) errors.Add(new("description", "at most 1000 characters"));
        if (errors.Count > 0) return Problems.Invalid(errors);

        var dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(request.Path!));
        if (registry.InDataDir(dir))
            return Problems.Invalid("path", "lies in the service's data directory, where tenants' datasets and jobs are kept; copy the model out of it first");
        var (model, error) = registry.Load(request.Name!, ModelKinds.Registered, dir);
        if (model == null) return Problems.Invalid("path", $"{dir}: {error}");
        var row = new RegisteredModel { Name = request.Name!, Path = dir, Description = request.Description, CreatedAt = DateTime.UtcNow };
        db.RegisteredModels.Add(row);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { return Problems.Conflict($"a model named '{row.Name}' is registered already; delete it first to point the name elsewhere"); }
        return TypedResults.Created($"/v1/models/{row.Name}", ModelRegistry.Dto(model, row, admin: true));
    }

    /// <param name="name">The registered model's name.</param>
    private static async Task<Results<NoContent, NotFound>> Remove(string name, ServiceDb db, CancellationToken ct) =>
        await db.RegisteredModels.Where(r => r.Name == name).ExecuteDeleteAsync(ct) > 0 ? TypedResults.NoContent() : TypedResults.NotFound();
}
