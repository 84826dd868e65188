using LongSeqService.Shared.Hosts;
using Microsoft.EntityFrameworkCore;

namespace LongSeqService.Scheduler.Data;

/// <summary>
/// The service's state in PostgreSQL: the source of truth for tenants, keys, datasets, jobs, hosts and
/// slots. Table and column names are snake_case (jobs.current_step), so SQL reads like the API.
/// Used directly by endpoints and Hangfire jobs; no repository layer.
/// </summary>
public sealed class ServiceDb(DbContextOptions<ServiceDb> options) : DbContext(options)
{
    public DbSet<Tenant> Tenants => Set<Tenant>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<Dataset> Datasets => Set<Dataset>();
    public DbSet<Job> Jobs => Set<Job>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<TrainerHost> Hosts => Set<TrainerHost>();
    public DbSet<HostSlot> HostSlots => Set<HostSlot>();
    public DbSet<Metric> Metrics => Set<Metric>();
    public DbSet<RegisteredModel> RegisteredModels => Set<RegisteredModel>();

    protected override void OnModelCreating(ModelBuilder b)
    {
        b.Entity<Tenant>().HasIndex(t => t.Name).IsUnique();
        b.Entity<ApiKey>().HasIndex(k => k.Hash).IsUnique();
        b.Entity<Dataset>(d =>
        {
            d.HasIndex(x => new { x.TenantId, x.Sha256 }).IsUnique();
            d.HasOne<Tenant>().WithMany().HasForeignKey(x => x.TenantId);
        });
        b.Entity<Job>(j =>
        {
            j.Property(x => x.Spec).HasColumnType("jsonb");
            j.Property(x => x.Metadata).HasColumnType("jsonb");
            // Idempotent submission: one job per (tenant, key); a second insert fails on this index.
            j.HasIndex(x => new { x.TenantId, x.IdempotencyKey }).IsUnique().HasFilter("idempotency_key IS NOT NULL");
            j.HasIndex(x => new { x.State, x.Priority, x.CreatedAt });
            j.HasIndex(x => new { x.TenantId, x.CreatedAt });
            j.HasOne<Tenant>().WithMany().HasForeignKey(x => x.TenantId);
        });
        b.Entity<JobEvent>(e =>
        {
            e.HasIndex(x => new { x.JobId, x.Id });
            e.HasOne<Job>().WithMany().HasForeignKey(x => x.JobId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<TrainerHost>(h =>
        {
            h.HasIndex(x => x.Name).IsUnique();
            h.HasIndex(x => x.KeyId).IsUnique(); // a host key is exactly one host
            h.Property(x => x.Artifacts).HasDefaultValue(ArtifactAccess.Shared); // hosts registered before remote hosts existed shared the store
            h.HasOne<ApiKey>().WithMany().HasForeignKey(x => x.KeyId).OnDelete(DeleteBehavior.SetNull);
            h.HasMany(x => x.Slots).WithOne().HasForeignKey(s => s.HostId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<HostSlot>(s =>
        {
            s.HasKey(x => new { x.HostId, x.Index });
            s.HasIndex(x => x.JobId);
        });
        b.Entity<Metric>(m =>
        {
            m.HasKey(x => new { x.JobId, x.Step });
            m.Property(x => x.Record).HasColumnType("jsonb");
            m.HasOne<Job>().WithMany().HasForeignKey(x => x.JobId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<RegisteredModel>().HasKey(x => x.Name);
    }
}
