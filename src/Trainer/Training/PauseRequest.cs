using LongSeqService.Shared.Runs;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// The trainer's side of <see cref="PauseProtocol"/>: after each optimizer step the main rank looks for the pause
/// file its host creates, and every rank learns the answer from one all-reduce, so all of them stop after the same
/// step (a rank that stopped alone would leave its peers waiting in a collective). Without the environment variable
/// (the CLI run by hand) nothing is checked and no collective is added.
/// </summary>
public static class PauseRequest
{
    public static string? File => Environment.GetEnvironmentVariable(PauseProtocol.FileVariable) is { Length: > 0 } f ? f : null;

    /// <summary>A collective when a pause file is configured: every rank must call it after the same step.</summary>
    public static bool IsRequested(ICollectives world, bool isMain)
    {
        if (File is not { } file) return false;
        using var flag = tensor(new[] { isMain && System.IO.File.Exists(file) ? 1.0 : 0.0 }, ScalarType.Float64); // (1,)
        world.AllReduceSum(flag);
        return flag.item<double>() > 0;
    }

    /// <summary>Main rank, once the checkpoint of <paramref name="step"/> is written: tells the host the pause happened.</summary>
    public static void MarkHonored(int step)
    {
        if (File is { } file) System.IO.File.WriteAllText(PauseProtocol.DoneMarker(file), step.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>The step this process paused at, or null when it ran to the end.</summary>
    public static int? HonoredStep() =>
        File is { } file && System.IO.File.Exists(PauseProtocol.DoneMarker(file)) && int.TryParse(System.IO.File.ReadAllText(PauseProtocol.DoneMarker(file)).Trim(), out var step) ? step : null;
}
