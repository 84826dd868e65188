namespace LongSeqService.Service.Tests;

/// <summary>The Api with its scheduler and a real trainer host in this process, launching the real trainer CLI
/// (src/Trainer's Release build) on the built-in tiny models: real TorchSharp training, checkpoints and resumption.</summary>
public class RealTrainerHostFixture : HostFlowFixture
{
    public static readonly string TrainerDll = Path.Combine(Path.GetDirectoryName(Data.Dir)!, "src", "Trainer", "bin", "Release", "net10.0", "linux-x64", "trainer.dll");

    protected override IReadOnlyList<string> TrainerCommand => File.Exists(TrainerDll)
        ? ["dotnet", TrainerDll]
        : throw new FileNotFoundException($"the trainer CLI is not built: {TrainerDll} (dotnet build src/Trainer -c Release)");
}
