using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongSeqService.Trainer.Training;

/// <summary>
/// <c>trainer_log.jsonl</c>: one JSON object per logging step, with LLaMA-Factory's field names
/// (current_steps, total_steps, loss, lr, epoch, percentage, elapsed_time, remaining_time) plus
/// tokens_per_sec, trained_tokens, label_tokens (this record's loss-bearing tokens), grad_norm, per-rank memory and, for DPO, the reward metrics.
/// The ETA is measured on this run's own steps (resumed steps excluded), so it is honest after a resume.
/// </summary>
public sealed class TrainerLog
{
    private readonly string? _path;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly int _firstStep;
    private readonly int _totalSteps;
    private long _tokensSinceStart;

    /// <param name="outputDir">Null for runs that keep no files (parity, bench): records are built, not written.</param>
    public TrainerLog(string? outputDir, int firstStep, int totalSteps, long trainedTokensBefore)
    {
        _path = outputDir is null ? null : Path.Combine(outputDir, "trainer_log.jsonl");
        (_firstStep, _totalSteps, TrainedTokens) = (firstStep, totalSteps, trainedTokensBefore);
    }

    public long TrainedTokens { get; private set; }
    public double ElapsedSeconds => _clock.Elapsed.TotalSeconds;

    /// <summary>Counts a finished step; returns the progress figures (for the console bar and the log line).</summary>
    public ProgressInfo Advance(int stepsDone, StepMetrics m)
    {
        TrainedTokens += m.Tokens;
        _tokensSinceStart += m.Tokens;
        double elapsed = ElapsedSeconds;
        int doneHere = stepsDone - _firstStep;
        double remaining = doneHere > 0 ? elapsed / doneHere * (_totalSteps - stepsDone) : double.NaN;
        return new ProgressInfo(stepsDone, _totalSteps, elapsed, remaining, elapsed > 0 ? _tokensSinceStart / elapsed : 0, TrainedTokens);
    }

    public JsonObject Record(ProgressInfo p, StepMetrics m, double epoch, double? evalLoss, IReadOnlyList<long> rankPeakBytes, IReadOnlyList<long> rankBaselineBytes)
    {
        var o = new JsonObject
        {
            ["current_steps"] = p.Step,
            ["total_steps"] = p.TotalSteps,
            ["loss"] = Math.Round(m.Loss, 6),
            ["lr"] = m.Lr,
            ["epoch"] = Math.Round(epoch, 4),
            ["percentage"] = Math.Round(100.0 * p.Step / p.TotalSteps, 2),
            ["elapsed_time"] = Hms(p.ElapsedSeconds),
            ["remaining_time"] = double.IsNaN(p.RemainingSeconds) ? null : Hms(p.RemainingSeconds),
            ["elapsed_seconds"] = Math.Round(p.ElapsedSeconds, 3),
            ["remaining_seconds"] = double.IsNaN(p.RemainingSeconds) ? null : Math.Round(p.RemainingSeconds, 3),
            ["tokens_per_sec"] = Math.Round(p.TokensPerSecond, 1),
            ["trained_tokens"] = p.TrainedTokens,
            // The tokens that reached the loss in this record's steps: what packing vs padding changes (useful work).
            ["label_tokens"] = m.LabelTokens,
            ["grad_norm"] = Math.Round(m.GradNorm, 6),
            ["rank_peak_bytes"] = new JsonArray(rankPeakBytes.Select(b => (JsonNode)b).ToArray()),
            ["rank_baseline_bytes"] = new JsonArray(rankBaselineBytes.Select(b => (JsonNode)b).ToArray()),
            // The step's own time: a record reaches the service later (batched, or replayed from a host's spool).
            ["logged_at"] = DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        };
        if (evalLoss is { } ev) o["eval_loss"] = Math.Round(ev, 6);
        if (m.Preference is { } pref)
        {
            o["rewards/chosen"] = pref.ChosenReward;
            o["rewards/rejected"] = pref.RejectedReward;
            o["rewards/accuracies"] = pref.Accuracy;
            o["rewards/margins"] = pref.Margin;
        }
        return o;
    }

    public void Append(JsonObject record)
    {
        if (_path == null) return;
        RunFence.BeforeWrite();
        File.AppendAllText(_path, record.ToJsonString() + "\n");
    }

    public static string Hms(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Max(0, seconds));
        return $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}";
    }

    /// <summary>Reads every record of an existing log (a resumed run keeps its history).</summary>
    public static List<JsonObject> Read(string outputDir)
    {
        var path = Path.Combine(outputDir, "trainer_log.jsonl");
        return File.Exists(path)
            ? File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList()
            : [];
    }

    /// <summary>Drops records after <paramref name="step"/> (they belong to the run being replaced by a resume).</summary>
    public static void TruncateAfter(string outputDir, int step)
    {
        var path = Path.Combine(outputDir, "trainer_log.jsonl");
        if (!File.Exists(path)) return;
        RunFence.BeforeWrite();
        var kept = Read(outputDir).Where(o => (int)o["current_steps"]! <= step).Select(o => o.ToJsonString());
        File.WriteAllLines(path, kept);
    }

    internal static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}

/// <summary>
/// The steps since the last log line. Like Hugging Face's Trainer, a log line reports the mean loss
/// (and DPO metrics) over its logging window, not the last step's value alone; lr is the current one.
/// </summary>
public sealed class MetricWindow
{
    private readonly List<StepMetrics> _steps = [];

    public void Add(StepMetrics m) => _steps.Add(m);

    public StepMetrics Take()
    {
        var w = _steps.ToList();
        _steps.Clear();
        return new StepMetrics(w.Average(x => x.Loss), w.Average(x => x.GradNorm), w[^1].Lr, w.Sum(x => x.LabelTokens), w.Sum(x => x.Tokens),
            PreferenceMetrics.Mean(w.Select(x => x.Preference).ToList()));
    }
}

public sealed record ProgressInfo(int Step, int TotalSteps, double ElapsedSeconds, double RemainingSeconds, double TokensPerSecond, long TrainedTokens);
