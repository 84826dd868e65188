using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LongSeqService.Api.OpenAi;

// OpenAI's fine-tuning objects, field for field (snake_case by the wire options), so its SDKs read them as their own.

/// <summary>A job (object "fine_tuning.job"): the same job as /v1/jobs/{id}, under the same id. <see cref="Longseq"/> adds
/// what OpenAI has no word for (the native state, the sequence-parallel layout, the live step).</summary>
public sealed record FineTuningJobObject(
    string Object, string Id, string Model, long CreatedAt, long? FinishedAt, string? FineTunedModel, string OrganizationId,
    IReadOnlyList<string> ResultFiles, string Status, string? ValidationFile, string TrainingFile, FineTuningHyperparameters Hyperparameters,
    long? TrainedTokens, FineTuningJobError? Error, string? UserProvidedSuffix, int Seed, long? EstimatedFinish,
    IReadOnlyList<JsonObject> Integrations, IReadOnlyDictionary<string, string>? Metadata, FineTuningMethod Method, LongSeqJobInfo Longseq);

/// <summary>The hyperparameters as run (never "auto": the values the spec resolved to). <see cref="Beta"/> for DPO only.</summary>
public sealed record FineTuningHyperparameters(
    double NEpochs, int BatchSize, double LearningRateMultiplier,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Beta = null);

public sealed record FineTuningMethod(
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] FineTuningMethodBody? Supervised,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] FineTuningMethodBody? Dpo);

public sealed record FineTuningMethodBody(FineTuningHyperparameters Hyperparameters);

public sealed record FineTuningJobError(string Code, string Message, string? Param);

/// <summary>The native view of the job, for clients that know this service.</summary>
public sealed record LongSeqJobInfo(string State, string Stage, int SequenceParallelSize, int DataParallelSize, int? CurrentStep, int? TotalSteps, double? Loss);

/// <summary>An event (object "fine_tuning.job.event"): a state transition (type "message") or a logged step
/// (type "metrics", its figures in <see cref="Data"/>).</summary>
public sealed record FineTuningEventObject(string Object, string Id, long CreatedAt, string Level, string Message, string Type, JsonObject? Data);

/// <summary>A checkpoint (object "fine_tuning.job.checkpoint"); <see cref="FineTunedModelCheckpoint"/> is a model name a
/// job can start from (job:&lt;id&gt;/checkpoint-&lt;step&gt;).</summary>
public sealed record FineTuningCheckpointObject(string Object, string Id, long CreatedAt, string FineTunedModelCheckpoint, int StepNumber,
    FineTuningCheckpointMetrics Metrics, string FineTuningJobId);

public sealed record FineTuningCheckpointMetrics(int Step, double? TrainLoss, double? ValidLoss);
