using System.Text.Json.Nodes;
using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>Receives progress on the main rank (the CLI's progress bar, the host's forwarder, the benchmark).</summary>
public interface ITrainingObserver
{
    void OnStart(int firstStep, int totalSteps) { }
    void OnStep(ProgressInfo progress, StepMetrics metrics) { }
    void OnLog(JsonObject record) { }
    void OnCheckpoint(int step, string path) { }
}

/// <summary>What a run leaves in memory: the step figures, and on request the first step's summed
/// gradient and the final parameters (flat, float64, main rank) for parity checks; attention time per rank.</summary>
public sealed record RunResult(IReadOnlyList<StepMetrics> History, double[]? FirstGradient, double[]? FinalParameters, AttentionTimer[] RankAttention);

/// <summary>Options for runs that are checks rather than jobs (parity, bench): no files, captured tensors.</summary>
public sealed record RunOptions(bool CaptureFirstGradient = false, bool CaptureFinalParameters = false, int? IntraOpThreadsPerRank = null);

/// <summary>
/// A whole training run: sequence_parallel_size × data_parallel_size ranks over the prepared data, the
/// main rank writing logs, checkpoints and the final model (when the run has an output_dir).
/// Everything that can be refused was refused by <see cref="RunPreparation"/> before this starts.
/// </summary>
public sealed class TrainingRun(PreparedRun prep, ITrainingObserver? observer = null, RunOptions? options = null)
{
    private readonly JobSpec _spec = prep.Spec;
    private readonly RunOptions _options = options ?? new RunOptions();

    public RunResult Execute()
    {
        int sp = _spec.SequenceParallelSize, dp = _spec.DataParallelSize;
        var schedule = new DataSchedule(prep.TrainCount, _spec.PerDeviceTrainBatchSize, dp, _spec.GradientAccumulationSteps,
            _spec.NumTrainEpochs, _spec.MaxSteps, _spec.Seed);
        var lr = LrSchedule.From(_spec.LrSchedulerType, _spec.LearningRate, schedule.TotalSteps, _spec.WarmupSteps, _spec.WarmupRatio);
        var output = prep.OutputDir;
        if (output != null) Directory.CreateDirectory(output);
        var resumeFrom = output != null ? Checkpoints.Resolve(_spec.ResumeFromCheckpoint, output) : null;
        var history = new List<StepMetrics>();
        double[]? firstGradient = null, finalParameters = null;
        var timers = Enumerable.Range(0, sp * dp).Select(_ => new AttentionTimer()).ToArray();

        InProcessWorld.Run(sp * dp, world =>
        {
            int? previousThreads = null;
            if (_options.IntraOpThreadsPerRank is { } threads) { previousThreads = get_num_threads(); set_num_threads(threads); }
            // World rank = dpRank · sp + spRank: an SP group is contiguous (one host: ring traffic is heavy).
            int spRank = world.Rank % sp, dpRank = world.Rank / sp;
            var spGroup = world.Split(Enumerable.Range(dpRank * sp, sp).ToArray());
            var dpGroup = world.Split(Enumerable.Range(0, dp).Select(d => d * sp + spRank).ToArray());
            var plan = SequenceParallelPlan.Create(_spec.SequenceParallelMode, sp, prep.Shape.NumAttentionHeads, prep.Shape.NumKeyValueHeads, _spec.UlyssesDegree);
            var ctx = new RankContext(world, spGroup, dpGroup, full => plan.Shard(full, spRank));
            bool needsReference = _spec.Stage == "dpo" && !_spec.PrecomputeRefLogps && _spec.FinetuningType == "full";
            var (model, reference) = prep.Models.Create(plan.CreateAttention(spGroup, timer: timers[world.Rank]), needsReference);
            try
            {
                int first = 0;
                long tokensBefore = 0;
                // The trainer is built on the initial weights: with precompute_ref_logps it computes the
                // reference log-probs from them (the reference is the model before training, also on resume).
                using var trainer = new RankTrainer(ctx, _spec, model, reference, schedule, lr, prep.Train, prep.Val, prep.PadId);
                if (resumeFrom != null)
                {
                    prep.Models.LoadWeights(model, resumeFrom);                 // in place: the optimizer keeps its tensors
                    var st = Checkpoints.Load(resumeFrom, trainer.Optimizer);
                    (first, tokensBefore) = (st.GlobalStep, st.TrainedTokens);
                    if (ctx.IsMain) TrainerLog.TruncateAfter(output!, first);
                }
                var log = new TrainerLog(output, first, schedule.TotalSteps, tokensBefore);
                var records = ctx.IsMain && output != null ? TrainerLog.Read(output) : [];
                if (ctx.IsMain) observer?.OnStart(first, schedule.TotalSteps);
                var memory = new RankMemory(world);
                double? lastEval = null;
                var window = new MetricWindow();
                trainer.CaptureNextGradient = _options.CaptureFirstGradient;

                for (int step = first; step < schedule.TotalSteps; step++)
                {
                    var m = trainer.TrainStep(step);
                    int done = step + 1;
                    bool last = done == schedule.TotalSteps;
                    if (prep.Val.Count > 0 && ((_spec.EvalSteps is { } ev && done % ev == 0) || last))
                        lastEval = trainer.Evaluate();
                    var (peaks, baselines) = memory.Gather();
                    if (ctx.IsMain)
                    {
                        history.Add(m);
                        var p = log.Advance(done, m);
                        observer?.OnStep(p, m);
                        window.Add(m);
                        if (done % _spec.LoggingSteps == 0 || last || done == 1)          // a resumed run logs on the straight run's steps
                        {
                            var rec = log.Record(p, window.Take(), schedule.EpochAt(done), lastEval, peaks, baselines);
                            if (output != null) { log.Append(rec); records.Add(rec); }
                            observer?.OnLog(rec);
                            lastEval = null;
                        }
                    }
                    if (output != null && done % _spec.SaveSteps == 0 && !last)
                    {
                        if (ctx.IsMain)
                        {
                            var path = Checkpoints.Save(output, done, log.TrainedTokens, schedule.EpochAt(done), trainer.Optimizer,
                                dir => prep.Models.SaveWeights(model, dir), records, _spec.SaveTotalLimit);
                            observer?.OnCheckpoint(done, path);
                        }
                        world.Barrier();                    // nobody runs ahead of a checkpoint being written
                    }
                    if (done % 8 == 0) NativeMemory.Trim();
                }
                if (ctx.IsMain)
                {
                    firstGradient = trainer.CapturedGradient;
                    if (_options.CaptureFinalParameters) finalParameters = Flatten(model);
                    if (output != null)
                    {
                        prep.Models.SaveFinal(model, output);
                        Checkpoints.WriteTrainerState(output, schedule.TotalSteps, log.TrainedTokens, schedule.EpochAt(schedule.TotalSteps),
                            trainer.Optimizer.Step, records);
                    }
                }
                world.Barrier();
            }
            finally
            {
                model.Dispose();
                reference?.Dispose();
                if (previousThreads is { } t) set_num_threads(t);
            }
        });
        return new RunResult(history, firstGradient, finalParameters, timers);
    }

    private static double[] Flatten(Model.CausalLM model)
    {
        using var scope = NewDisposeScope();
        return cat(model.parameters().Select(p => p.detach().flatten().to(ScalarType.Float64)).ToArray()).data<double>().ToArray();
    }
}
