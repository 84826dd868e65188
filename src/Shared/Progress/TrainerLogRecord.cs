using System.Text.Json;
using System.Text.Json.Serialization;

namespace LongSeqService.Shared.Progress;

/// <summary>
/// One line of the trainer's <c>trainer_log.jsonl</c> (LLaMA-Factory's key names). The trainer writes
/// it, the host forwards it unchanged, the API stores it as a metric and pushes it to the hub. Keys the
/// record does not name (eval loss, anything new) survive in <see cref="Extra"/>.
/// </summary>
public sealed record TrainerLogRecord
{
    [JsonPropertyName("current_steps")] public int CurrentSteps { get; init; }
    [JsonPropertyName("total_steps")] public int TotalSteps { get; init; }
    [JsonPropertyName("loss")] public double? Loss { get; init; }
    [JsonPropertyName("lr")] public double? Lr { get; init; }
    [JsonPropertyName("epoch")] public double? Epoch { get; init; }
    [JsonPropertyName("percentage")] public double? Percentage { get; init; }
    /// <summary>Seconds since training started.</summary>
    [JsonPropertyName("elapsed_time")] public JsonElement? ElapsedTime { get; init; }
    /// <summary>Estimated seconds left (LLaMA-Factory writes "0:01:23"; numbers are accepted too).</summary>
    [JsonPropertyName("remaining_time")] public JsonElement? RemainingTime { get; init; }
    [JsonPropertyName("tokens_per_sec")] public double? TokensPerSec { get; init; }
    [JsonPropertyName("trained_tokens")] public long? TrainedTokens { get; init; }
    /// <summary>Peak bytes in use per rank since the previous record.</summary>
    [JsonPropertyName("rank_peak_bytes")] public long[]? RankPeakBytes { get; init; }
    [JsonPropertyName("rewards/chosen")] public double? RewardsChosen { get; init; }
    [JsonPropertyName("rewards/rejected")] public double? RewardsRejected { get; init; }
    [JsonPropertyName("rewards/accuracies")] public double? RewardsAccuracies { get; init; }
    [JsonPropertyName("rewards/margins")] public double? RewardsMargins { get; init; }
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

/// <summary>A logged step of a job, as the hub pushes it and GET /v1/jobs/{id}/metrics returns it.</summary>
public sealed record MetricDto(Guid JobId, int Step, DateTimeOffset At, TrainerLogRecord Record);

/// <summary>A state change pushed on the hub (the same fields as the job's event list).</summary>
public sealed record JobStateMessage(Guid JobId, string State, string? FromState, string Reason, DateTimeOffset At);

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
