using System.Text.Json.Nodes;
using LongSeqService.Trainer.Training;
using Spectre.Console;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// The console view of a run. On a terminal: a live bar counting optimizer steps (gradient accumulation
/// included) with loss, learning rate, tokens/s and the same ETA the log records. Elsewhere (a pipe, the
/// trainer host): one plain line per logging step.
/// </summary>
public sealed class ConsoleProgress : ITrainingObserver, IDisposable
{
    private readonly bool _interactive = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsErrorRedirected;
    private ProgressTask? _task;
    private Task? _render;
    private readonly TaskCompletionSource _done = new();
    private readonly TaskCompletionSource _ready = new();

    public void OnStart(int firstStep, int totalSteps)
    {
        if (!_interactive) { Console.Error.WriteLine($"training: steps {firstStep}..{totalSteps}"); return; }
        _render = AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn())
            .StartAsync(async ctx =>
            {
                _task = ctx.AddTask($"step {firstStep}/{totalSteps}", maxValue: totalSteps);
                _task.Value = firstStep;
                _ready.TrySetResult();
                await _done.Task;
                ctx.Refresh();
            });
        _ready.Task.Wait();
    }

    public void OnStep(ProgressInfo p, StepMetrics m)
    {
        if (_task is null) return;
        string eta = double.IsNaN(p.RemainingSeconds) ? "?" : TrainerLog.Hms(p.RemainingSeconds);
        _task.Description = $"step {p.Step}/{p.TotalSteps}  loss {m.Loss:F4}  lr {m.Lr:0.###e+0}  {p.TokensPerSecond:N0} tok/s  ETA {eta}";
        _task.Value = p.Step;
    }

    public void OnLog(JsonObject record)
    {
        if (_interactive) return;
        double Num(string key) => record[key]!.GetValue<double>();
        var extra = record["rewards/accuracies"] is not null ? $"  acc {Num("rewards/accuracies"):0.###}  margin {Num("rewards/margins"):0.###}" : "";
        var eval = record["eval_loss"] is not null ? $"  eval_loss {Num("eval_loss"):0.####}" : "";
        Console.Error.WriteLine($"step {record["current_steps"]}/{record["total_steps"]}  loss {Num("loss"):0.####}  lr {Num("lr"):0.###e+0}  " +
                                $"{Num("tokens_per_sec"):N0} tok/s  ETA {record["remaining_time"]}{extra}{eval}");
    }

    public void OnCheckpoint(int step, string path)
    {
        if (!_interactive) Console.Error.WriteLine($"saved {path}");
    }

    public void Dispose()
    {
        _done.TrySetResult();
        _render?.Wait();
    }
}
