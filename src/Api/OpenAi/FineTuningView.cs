using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongSeqService.Scheduler.Data;
using LongSeqService.Shared.Jobs;
using LongSeqService.Shared.Progress;
using LongSeqService.Shared.Wire;

namespace LongSeqService.Api.OpenAi;

/// <summary>Our jobs, events, metrics and checkpoints as OpenAI's objects.</summary>
public static class FineTuningView
{
    /// <summary>OpenAI's status words for our states. OpenAI has none for a job on its way to cancelled or paused:
    /// such a job is still running (its native state is in <c>longseq.state</c>).</summary>
    public static string Status(string state) => state switch
    {
        JobStates.Validating => "validating_files",
        JobStates.Queued or JobStates.Scheduled => "queued",
        JobStates.Running or JobStates.Cancelling or JobStates.Pausing => "running",
        _ => state, // paused, succeeded, failed, cancelled: the same words
    };

    private static long Unix(DateTime at) => new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc)).ToUnixTimeSeconds();

    /// <summary>The base learning rate that <c>learning_rate_multiplier</c> multiplies: the spec's default.</summary>
    public static readonly double BaseLearningRate = new JobSpec().LearningRate;

    public static FineTuningJobObject Job(Job job)
    {
        var spec = job.ParsedSpec();
        bool dpo = spec.Stage == Stage.Dpo;
        var hp = new FineTuningHyperparameters(spec.NumTrainEpochs, spec.PerDeviceTrainBatchSize, spec.LearningRate / BaseLearningRate, dpo ? spec.PrefBeta : null);
        var method = new FineTuningMethod(dpo ? "dpo" : "supervised", dpo ? null : new FineTuningMethodBody(hp), dpo ? new FineTuningMethodBody(hp) : null);
        var metadata = job.Metadata == null ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(job.Metadata);
        var error = job.State == JobStates.Failed ? new FineTuningJobError("training_failed", job.Error ?? "training failed", null) : null;
        return new FineTuningJobObject("fine_tuning.job", job.Id.ToString(), job.Model, Unix(job.CreatedAt), job.FinishedAt is { } f ? Unix(f) : null,
            job.State == JobStates.Succeeded ? $"job:{job.Id}" : null, job.TenantId.ToString(), [], Status(job.State), spec.EvalDataset, job.DatasetId, hp,
            job.TrainedTokens, error, job.Suffix, spec.Seed, job.EstimatedFinish is { } e ? Unix(e) : null, [], metadata, method,
            new LongSeqJobInfo(job.State, job.Stage, job.SequenceParallelSize, job.DataParallelSize, job.CurrentStep, job.TotalSteps, job.Loss));
    }

    public static FineTuningEventObject Event(JobEvent e) => new("fine_tuning.job.event", $"ftevent-{e.Id}", Unix(e.At),
        e.ToState == JobStates.Failed ? "error" : e.ToState is JobStates.Cancelled or JobStates.Cancelling ? "warn" : "info",
        $"{(e.FromState == null ? "" : e.FromState + " → ")}{e.ToState}: {e.Reason}", "message",
        new JsonObject { ["from_state"] = e.FromState, ["to_state"] = e.ToState });

    /// <summary>A logged step as OpenAI's metrics event: train_loss, and our own figures beside it.</summary>
    public static FineTuningEventObject Metric(Metric m)
    {
        var r = JsonSerializer.Deserialize<TrainerLogRecord>(m.Record, WireJson.Options)!;
        var data = new JsonObject { ["step"] = r.CurrentSteps, ["total_steps"] = r.TotalSteps, ["train_loss"] = r.Loss };
        if (ValidLoss(r) is { } valid) data["valid_loss"] = valid;
        data["learning_rate"] = r.Lr;
        data["epoch"] = r.Epoch;
        data["tokens_per_sec"] = r.TokensPerSec;
        data["trained_tokens"] = r.TrainedTokens;
        var loss = r.Loss is { } l ? l.ToString("0.####", CultureInfo.InvariantCulture) : "n/a";
        return new("fine_tuning.job.event", $"ftmetric-{m.Step}", Unix(m.At), "info", $"Step {r.CurrentSteps}/{r.TotalSteps}: training loss={loss}", "metrics", data);
    }

    private static double? ValidLoss(TrainerLogRecord r) =>
        r.Extra?.TryGetValue("eval_loss", out var v) == true && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    public static FineTuningCheckpointObject Checkpoint(Guid jobId, CheckpointDto c, Metric? at)
    {
        var r = at == null ? null : JsonSerializer.Deserialize<TrainerLogRecord>(at.Record, WireJson.Options);
        return new("fine_tuning.job.checkpoint", $"ftckpt-{jobId:N}-{c.Step}", c.CreatedAt.ToUnixTimeSeconds(), $"job:{jobId}/{c.Path}", c.Step,
            new FineTuningCheckpointMetrics(c.Step, r?.Loss, r == null ? null : ValidLoss(r)), jobId.ToString());
    }
}
