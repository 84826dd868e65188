using LongSeqService.Api.Infrastructure;

var builder = WebApplication.CreateBuilder(args);
builder.AddLongSeqApi();

var app = builder.Build();
await app.PrepareDatabaseAsync();      // migrations and bootstrap keys, before Hangfire starts
if (args.Contains("--migrate-only")) return;
app.MapLongSeqApi();
app.Run();

public partial class Program;
