using LongSeqService.Api.Estimates;
using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using LongSeqService.Api.Auth;
using LongSeqService.Api.Datasets;
using LongSeqService.Api.Health;
using LongSeqService.Api.Hosts;
using LongSeqService.Api.Jobs;
using LongSeqService.Api.Keys;
using LongSeqService.Api.Models;
using LongSeqService.Api.OpenAi;
using LongSeqService.Api.Progress;
using LongSeqService.Scheduler;
using LongSeqService.Scheduler.Data;
using LongSeqService.Scheduler.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace LongSeqService.Api.Infrastructure;

/// <summary>All of the Api's registration and its pipeline, so Program.cs reads as intent.</summary>
public static class ApiSetup
{
    public static string ConnectionString(IConfiguration config)
    {
        var given = config.GetConnectionString("Db") ?? Environment.GetEnvironmentVariable("LONGSEQ_DB")
            ?? throw new InvalidOperationException("no database: set ConnectionStrings:Db or LONGSEQ_DB (scripts/run.sh does)");
        // Per request the service runs one or two short statements (a job by id, a submission's lookups),
        // so what PostgreSQL does around them counts: Npgsql prepares statements on the server after a
        // few uses (no parse and plan each time), and a pooled connection is not reset on its return
        // (DISCARD ALL, or seven statements once some are prepared) — nothing here leaves session state
        // behind: no SET, LISTEN, temp tables or session advisory locks (Hangfire locks with rows).
        // Settings given in the connection string win.
        var keys = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = given };
        var b = new NpgsqlConnectionStringBuilder(given);
        if (!keys.ContainsKey("Max Auto Prepare") && !keys.ContainsKey("MaxAutoPrepare")) b.MaxAutoPrepare = 64;
        if (!keys.ContainsKey("No Reset On Close") && !keys.ContainsKey("NoResetOnClose")) b.NoResetOnClose = true;
        return b.ConnectionString;
    }

    public static void AddLongSeqApi(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var config = builder.Configuration;
        var conn = ConnectionString(config);

        services.Configure<LongSeqOptions>(config.GetSection("LongSeq"));
        services.PostConfigure<LongSeqOptions>(LongSeqOptions.FromEnvironment);
        // Pooled: a request leases a context that was set up before instead of building one (the context
        // holds no state of its own between requests; EF resets its change tracker on return).
        services.AddDbContextPool<ServiceDb>(o => ConfigureDb(o, conn));

        // Hangfire: the storage is this service's own (not JobStorage.Current), so several apps can
        // live in one process (tests); the server serves only the scheduler queue — hosts serve theirs.
        // Created on first use, which is after the migrations have created the database.
        // A lock older than DistributedLockTimeout is taken to be its dead holder's and removed (the default,
        // 10 min, kept a killed API's scheduler locks — and the sweeps behind them — for that long). The
        // sweeps hold theirs for well under a second.
        var hangfireOptions = new PostgreSqlStorageOptions
        {
            PrepareSchemaIfNecessary = true, QueuePollInterval = TimeSpan.FromSeconds(1), DistributedLockTimeout = TimeSpan.FromMinutes(1),
        };
        services.AddSingleton<JobStorage>(_ => new PostgreSqlStorage(new NpgsqlConnectionFactory(conn, hangfireOptions), hangfireOptions));
        services.AddHangfire((_, c) => c.UseSimpleAssemblyNameTypeSerializer().UseRecommendedSerializerSettings());
        var scheduler = config.GetSection("Scheduler").Get<SchedulerOptions>() ?? new SchedulerOptions();
        if (scheduler.RunServer)
            services.AddHangfireServer((sp, o) =>
            {
                o.Queues = [SchedulerOptions.Queue];
                o.WorkerCount = 2;
                o.SchedulePollingInterval = TimeSpan.FromSeconds(1);
                o.ServerName = $"{Environment.MachineName}:api:{Environment.ProcessId}";
            });
        services.AddLongSeqScheduler(config);
        services.AddSingleton<IJobNotifier, HubJobNotifier>();

        services.ConfigureHttpJsonOptions(o => WireJson.Configure(o.SerializerOptions));
        services.AddProblemDetails();
        services.AddExceptionHandler<DatabaseUnavailableHandler>();
        services.AddApiKeyAuth();
        services.AddSignalR().AddJsonProtocol(o => WireJson.Configure(o.PayloadSerializerOptions));
        foreach (var document in new[] { OpenApiDocumentSetup.TenantDocument, HostEndpoints.Document })
            services.AddOpenApi(document, o =>
            {
                o.ShouldInclude = endpoint => OpenApiDocumentSetup.Includes(document, endpoint);
                o.AddDocumentTransformer<OpenApiDocumentSetup>();
                o.AddOperationTransformer<OpenApiOperationSetup>();
                o.AddSchemaTransformer<OpenApiSchemaSetup>();
            });
        // The OpenAI-compatible surface in a document of its own: its errors are OpenAI's {"error": …}, not
        // problem details, and the SDKs that drive it are OpenAI's, generated from OpenAI's own description.
        services.AddOpenApi(OpenAi.OpenAiSurface.Document, o => o.ShouldInclude = endpoint => endpoint.GroupName == OpenAi.OpenAiSurface.Document);
        services.AddSingleton<DatasetStore>();
        services.AddScoped<MetricIngest>();
        services.AddScoped<ModelRegistry>();
        services.AddSingleton<HubConnectionsByKey>();
        services.AddSingleton<ContentHashes>();
        services.AddSingleton<OutputUploads>();
    }

    public static void ConfigureDb(DbContextOptionsBuilder o, string conn) =>
        o.UseNpgsql(conn, n => n.MigrationsAssembly(typeof(ApiSetup).Assembly.GetName().Name)).UseSnakeCaseNamingConvention();

    public static void MapLongSeqApi(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseOpenAiErrors();                // /v1/files and /v1/fine_tuning answer errors in OpenAI's shape
        // The dashboard (wwwroot): public files, served before authentication; the page itself calls
        // the API with the key. no-cache: a browser revalidates, so an upgraded service is seen at once.
        app.UseDefaultFiles();
        app.UseStaticFiles(new StaticFileOptions { OnPrepareResponse = c => c.Context.Response.Headers.CacheControl = "no-cache" });
        app.UseAuthentication();
        app.UseAuthorization();

        app.MapOpenApi("/openapi/{documentName}.json");
        app.UseSwaggerUI(o =>
        {
            o.SwaggerEndpoint($"/openapi/{OpenApiDocumentSetup.TenantDocument}.json", "LongSeqService v1");
            o.SwaggerEndpoint($"/openapi/{HostEndpoints.Document}.json", "Trainer hosts");
            o.RoutePrefix = "swagger";
        });
        app.UseHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [new AdminOnlyDashboard()], DisplayStorageConnectionString = false },
            app.Services.GetRequiredService<JobStorage>());

        // One filter for every endpoint: a query parameter the endpoint does not declare is a 400 naming it.
        var api = app.MapGroup("").RefuseUnknownQueryParameters();
        api.MapHealth();
        api.MapKeyApi();
        api.MapDatasetApi();
        api.MapJobApi();
        api.MapJobPauseApi();
        api.MapModelApi();
        api.MapEstimateApi();
        api.MapHostApi();
        api.MapRunApi();
        api.MapRunArtifactApi();
        // The OpenAI surface keeps OpenAI's conventions (it ignores query parameters it does not know).
        app.MapOpenAiFileApi();
        app.MapFineTuningApi();
        app.MapHub<ProgressHub>(ProgressHubNames.Path);
    }
}
