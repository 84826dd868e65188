using System.Text.RegularExpressions;
using LongSeqService.Api.Infrastructure;
using LongSeqService.Api.Jobs;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace LongSeqService.Api.Models;

/// <summary>
/// Turns the name a tenant gives in <c>model_name_or_path</c> into what a host loads. A name is one of:
/// a built-in (<c>builtin:tiny-llama</c>), a model shape (<c>shape:NAME</c>, random weights), a directory an
/// administrator registered (<c>POST /v1/models</c>), or the tenant's own succeeded job (<c>job:&lt;id&gt;</c>,
/// <c>job:&lt;id&gt;/checkpoint-&lt;step&gt;</c>). A server path never is: anything else, another tenant's job
/// included, gets the one <see cref="NotAvailable"/> answer, and no file is looked at for it, so the answer
/// says nothing about what exists on the server.
/// </summary>
public sealed partial class ModelRegistry(ServiceDb db, IOptions<LongSeqOptions> options)
{
    public const string NotAvailable = "not a model this key may use: name a built-in model (builtin:tiny-llama, builtin:tiny-qwen2), " +
        "a model shape (shape:NAME), a model an administrator registered, or one of your own succeeded jobs (job:<id> or job:<id>/checkpoint-<step>); " +
        "GET /v1/models lists them. Server paths are not accepted.";

    /// <summary>Registered names: no ':' or '/', so they never collide with builtin:, shape: or job: names.</summary>
    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{0,63}$")] public static partial Regex RegisteredName();
    [GeneratedRegex(@"^job:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:/(checkpoint-[0-9]{1,9}))?$")] private static partial Regex JobName();

    private LongSeqOptions O => options.Value;

    public async Task<(ResolvedModel? Model, string? Error)> ResolveAsync(string name, Guid tenant, CancellationToken ct)
    {
        if (ModelShape.Builtins.TryGetValue(name, out var builtin)) return (new ResolvedModel(name, ModelKinds.Builtin, name, builtin), null);
        if (name.StartsWith(ModelShape.BuiltinPrefix, StringComparison.Ordinal))
            return (null, $"no built-in model by that name; built-in models are {string.Join(", ", ModelShape.Builtins.Keys)}");
        if (ModelShapes.IsShape(name)) return Shape(name);
        if (JobName().Match(name) is { Success: true } m)
            return await FromJobAsync(name, Guid.Parse(m.Groups[1].Value), m.Groups[2].Success ? m.Groups[2].Value : null, tenant, ct);
        if (RegisteredName().IsMatch(name) && await db.RegisteredModels.AsNoTracking().FirstOrDefaultAsync(r => r.Name == name, ct) is { } registered)
            return FromRegistered(registered);
        return (null, NotAvailable);
    }

    /// <summary>Every model the tenant may name: built-ins, shapes, registered models and its own succeeded
    /// jobs (newest 100) with their checkpoints — those that load; administrators also see registered paths.</summary>
    public async Task<List<ModelDto>> ListAsync(Guid tenant, bool admin, CancellationToken ct)
    {
        var list = ModelShape.Builtins.Select(kv => ModelDto.Of(kv.Key, ModelKinds.Builtin, kv.Value)).ToList();
        foreach (var name in ModelShapes.Names)
            if (Shape(ModelShapes.Prefix + name).Model is { } s) list.Add(ModelDto.Of(s.Name, s.Kind, s.Shape));
        foreach (var r in await db.RegisteredModels.AsNoTracking().OrderBy(r => r.Name).ToListAsync(ct))
            if (FromRegistered(r).Model is { } m) list.Add(Dto(m, r, admin));
        var jobs = await db.Jobs.AsNoTracking().Where(j => j.TenantId == tenant && j.State == JobStates.Succeeded)
            .OrderByDescending(j => j.FinishedAt).Take(100).Select(j => j.Id).ToListAsync(ct);
        foreach (var id in jobs)
        {
            var output = JobPaths.OutputDir(O, id);
            if (Load($"job:{id}", ModelKinds.Job, output).Model is { } final) list.Add(ModelDto.Of(final.Name, final.Kind, final.Shape) with { JobId = id });
            foreach (var c in JobFiles.Checkpoints(output))
                if (Load($"job:{id}/{c.Path}", ModelKinds.Checkpoint, Path.Combine(output, c.Path)).Model is { } cp)
                    list.Add(ModelDto.Of(cp.Name, cp.Kind, cp.Shape) with { JobId = id, Step = c.Step });
        }
        return list;
    }

    public static ModelDto Dto(ResolvedModel m, RegisteredModel? r, bool admin) => ModelDto.Of(m.Name, m.Kind, m.Shape) with
    {
        Description = r?.Description, CreatedAt = r?.CreatedAt, Path = admin && r != null ? r.Path : null,
    };

    /// <summary>Whether <paramref name="dir"/> holds a model a run can start from (config.json the service
    /// understands, full weights, tokenizer.json); the problem otherwise, in the words of <paramref name="name"/>.</summary>
    public (ResolvedModel? Model, string? Error) Load(string name, string kind, string dir)
    {
        // A LoRA job's output holds only its adapter: say so, before ModelShape's own check of weights,
        // shapes and tokenizer.json (which would only say the weights are missing).
        if (File.Exists(Path.Combine(dir, "adapter_config.json")) && !Directory.EnumerateFiles(dir, "model*.safetensors").Any())
            return (null, $"{name} holds a LoRA adapter, not full weights; train from its base model instead");
        var shape = ModelShape.TryResolve(dir, out var error);
        return shape == null ? (null, Hide(error!, dir, name)) : (new ResolvedModel(name, kind, dir, shape), null);
    }

    /// <summary>Whether <paramref name="path"/>, with every link in it followed, lies in the data directory
    /// (tenants' datasets and jobs, the host key, the database): such a directory is never offered to all tenants.</summary>
    public bool InDataDir(string path)
    {
        var data = Path.TrimEndingDirectorySeparator(RealPath(O.DataPath()));
        var real = RealPath(path);
        return real == data || real.StartsWith(data + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    private (ResolvedModel? Model, string? Error) FromRegistered(RegisteredModel r)
    {
        if (InDataDir(r.Path)) return (null, $"registered model '{r.Name}' cannot be used (it now lies in the service's data directory); an administrator has to re-register it");
        var (m, error) = Load(r.Name, ModelKinds.Registered, r.Path);
        return m != null ? (m, null) : (null, $"registered model '{r.Name}' cannot be loaded now ({error}); an administrator has to fix or re-register it");
    }

    private async Task<(ResolvedModel? Model, string? Error)> FromJobAsync(string name, Guid id, string? checkpoint, Guid tenant, CancellationToken ct)
    {
        var state = await db.Jobs.AsNoTracking().Where(j => j.Id == id && j.TenantId == tenant).Select(j => j.State).FirstOrDefaultAsync(ct);
        if (state == null) return (null, NotAvailable);
        if (state != JobStates.Succeeded) return (null, $"job {id} is {state}; only a succeeded job's model can be trained from");
        var output = JobPaths.OutputDir(O, id);
        var dir = checkpoint == null ? output : JobFiles.Below(output, checkpoint);
        if (dir == null || !Directory.Exists(dir)) return (null, $"job {id} has no {checkpoint}; GET /v1/jobs/{id}/checkpoints lists its checkpoints");
        return Load(name, checkpoint == null ? ModelKinds.Job : ModelKinds.Checkpoint, dir);
    }

    /// <summary>Shapes are the service's own data: architectures without weights or a tokenizer. They are for
    /// estimates (POST /v1/estimates) and benchmarks, and refused for jobs here rather than failing on a host.</summary>
    private static (ResolvedModel? Model, string? Error) Shape(string name)
    {
        if (ModelShapes.TryGetConfigJson(name) == null) return (null, $"no model shape by that name; shapes are {string.Join(", ", ModelShapes.Names.Select(n => ModelShapes.Prefix + n))}");
        return (null, $"{name} is an architecture without weights or a tokenizer: use it for estimates (POST /v1/estimates), not for a job");
    }

    private string Hide(string message, string dir, string name) => JobPaths.Scrub(O, message.Replace(dir, name, StringComparison.Ordinal))!;

    /// <summary>The path with every symbolic link in it (not only the last) replaced by its target.</summary>
    private static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full)!;
        var real = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(real, part);
            real = new FileInfo(next).ResolveLinkTarget(returnFinalTarget: true)?.FullName is { } target ? RealPath(target) : next;
        }
        return real;
    }
}
