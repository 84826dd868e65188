using LongSeqService.Scheduler.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace LongSeqService.Api.Infrastructure;

/// <summary>For `dotnet ef migrations add` (no database needed to generate a migration).</summary>
public sealed class DesignTimeDbFactory : IDesignTimeDbContextFactory<ServiceDb>
{
    public ServiceDb CreateDbContext(string[] args)
    {
        var o = new DbContextOptionsBuilder<ServiceDb>();
        ApiSetup.ConfigureDb(o, Environment.GetEnvironmentVariable("LONGSEQ_DB") ?? "Host=localhost;Database=longseq");
        return new ServiceDb(o.Options);
    }
}
