using System.Text.Json;
using System.Text.Json.Serialization;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Shared.Progress;

/// <summary>
/// One line of the trainer's <c>trainer_log.jsonl</c> (LLaMA-Factory's key names). The trainer writes
/// it, the host forwards it unchanged, the API stores it as a metric and pushes it to the hub. Keys the
/// record does not name (eval loss, anything new) survive as further keys.
/// </summary>
public sealed record TrainerLogRecord
{
    /// <summary>Optimizer steps done (gradient accumulation included).</summary>
    [JsonPropertyName("current_steps")] public int CurrentSteps { get; init; }
    /// <summary>Optimizer steps the run will take.</summary>
    [JsonPropertyName("total_steps")] public int TotalSteps { get; init; }
    /// <summary>Training loss of this step (the mean over every label token of the step).</summary>
    [JsonPropertyName("loss")] public double? Loss { get; init; }
    /// <summary>Learning rate of this step.</summary>
    [JsonPropertyName("lr")] public double? Lr { get; init; }
    /// <summary>Epochs done, fractional.</summary>
    [JsonPropertyName("epoch")] public double? Epoch { get; init; }
    /// <summary>Percent of the steps done, 0 to 100.</summary>
    [JsonPropertyName("percentage")] public double? Percentage { get; init; }
    /// <summary>Time since training started: "h:mm:ss" as LLaMA-Factory writes it (a number of seconds is accepted too).</summary>
    [JsonPropertyName("elapsed_time")] public JsonElement? ElapsedTime { get; init; }
    /// <summary>Estimated seconds left (LLaMA-Factory writes "0:01:23"; numbers are accepted too).</summary>
    [JsonPropertyName("remaining_time")] public JsonElement? RemainingTime { get; init; }
    /// <summary>Training throughput of this attempt so far, tokens per second.</summary>
    [JsonPropertyName("tokens_per_sec")] public double? TokensPerSec { get; init; }
    /// <summary>Tokens trained on so far, across attempts.</summary>
    [JsonPropertyName("trained_tokens")] public long? TrainedTokens { get; init; }
    /// <summary>Peak bytes in use per rank since the previous record.</summary>
    [JsonPropertyName("rank_peak_bytes")] public long[]? RankPeakBytes { get; init; }
    /// <summary>DPO: mean implicit reward of the chosen answers.</summary>
    [JsonPropertyName("rewards/chosen")] public double? RewardsChosen { get; init; }
    /// <summary>DPO: mean implicit reward of the rejected answers.</summary>
    [JsonPropertyName("rewards/rejected")] public double? RewardsRejected { get; init; }
    /// <summary>DPO: fraction of pairs whose chosen reward beats the rejected one.</summary>
    [JsonPropertyName("rewards/accuracies")] public double? RewardsAccuracies { get; init; }
    /// <summary>DPO: mean of chosen minus rejected reward.</summary>
    [JsonPropertyName("rewards/margins")] public double? RewardsMargins { get; init; }
    /// <summary>Seconds since training started (this attempt), as a number.</summary>
    [JsonPropertyName("elapsed_seconds")] public double? ElapsedSeconds { get; init; }
    /// <summary>Estimated seconds left, as a number; null until a step of this attempt is done.</summary>
    [JsonPropertyName("remaining_seconds")] public double? RemainingSeconds { get; init; }
    /// <summary>When the trainer logged this step (its own clock, UTC).</summary>
    [JsonPropertyName("logged_at")] public DateTimeOffset? LoggedAt { get; init; }
    /// <summary>Anything else the trainer logged (eval_loss, grad_norm, rank_baseline_bytes, …), by its key.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>Seconds from a number or an "h:mm:ss" string (hours may pass 24); null when absent or unreadable.</summary>
    public static double? Seconds(JsonElement? value)
    {
        if (value is { ValueKind: JsonValueKind.Number } n) return n.GetDouble();
        if (value is not { ValueKind: JsonValueKind.String } s) return null;
        double total = 0;
        foreach (var part in s.GetString()!.Split(':'))
        {
            if (!double.TryParse(part, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var x)) return null;
            total = total * 60 + x;
        }
        return total;
    }
}

/// <summary>A logged step of a job, as the hub pushes it (client event <c>progress</c>) and GET /v1/jobs/{id}/metrics returns it.</summary>
/// <param name="JobId">The job.</param>
/// <param name="Step">The optimizer step (record.current_steps).</param>
/// <param name="At">The step's own time: when the trainer logged it (when the service received it, for a trainer that gives no time).</param>
/// <param name="Record">The trainer_log.jsonl line of the step.</param>
public sealed record MetricDto(Guid JobId, int Step, DateTimeOffset At, TrainerLogRecord Record);

/// <summary>A state change pushed on the hub (client event <c>state</c>; the same fields as the job's event list).</summary>
/// <param name="JobId">The job.</param>
/// <param name="State">The state it moved to.</param>
/// <param name="FromState">The state it left; null for the first transition (submitted → validating).</param>
/// <param name="Reason">Why, in words.</param>
/// <param name="At">When the transition happened.</param>
public sealed record JobStateMessage(Guid JobId, [property: ClosedSet(typeof(JobStates))] string State, [property: ClosedSet(typeof(JobStates))] string? FromState, string Reason, DateTimeOffset At);

/// <summary>Names of the hub's methods and client events, so the server, the host and the dashboard agree.</summary>
public static class ProgressHubNames
{
    public const string Path = "/hubs/progress";
    public const string SubscribeJob = "SubscribeJob";
    public const string UnsubscribeJob = "UnsubscribeJob";
    public const string SubscribeTenant = "SubscribeTenant";
    /// <summary>Client event carrying a <see cref="MetricDto"/>.</summary>
    public const string Progress = "progress";
    /// <summary>Client event carrying a <see cref="JobStateMessage"/>.</summary>
    public const string State = "state";
}
