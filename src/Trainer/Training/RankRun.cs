using LongSeqService.Shared.Jobs;
using LongSeqService.Trainer.Parallel;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Training;

/// <summary>What a rank leaves when the run ends. The figures are filled on the main rank only;
/// <see cref="RankAttentionSeconds"/> holds every rank's (forward, backward, wait) attention seconds.</summary>
public sealed record RankOutcome(List<StepMetrics> History, double[]? FirstGradient, double[]? FinalParameters, double[][] RankAttentionSeconds)
{
    /// <summary>Every rank's model-state bytes at the end (<see cref="ModelStateBytes"/>: weights, gradients, optimizer), in world order.</summary>
    public long[][] RankModelStateBytes { get; init; } = [];

    /// <summary>This rank's wall time inside the model-state collectives, all steps.</summary>
    public double StateCommunicationSeconds { get; init; }
}

/// <summary>
/// One rank's whole run — the same body whether the rank is a thread of the trainer (<see cref="TrainingRun"/>)
/// or its own process under mpiexec (<see cref="RankWorker"/>): build the replica and its groups, resume,
/// train, log and checkpoint on the main rank (world rank 0), save the result.
/// </summary>
public sealed class RankRun
{
    private readonly PreparedRun _prep;
    private readonly JobSpec _spec;
    private readonly RunOptions _options;
    private readonly ITrainingObserver? _observer;
    private readonly DataSchedule _schedule;
    private readonly LrSchedule _lr;
    private readonly string? _resumeFrom;

    /// <param name="observer">Called on the main rank only.</param>
    public RankRun(PreparedRun prep, RunOptions options, ITrainingObserver? observer)
    {
        (_prep, _spec, _options, _observer) = (prep, prep.Spec, options, observer);
        _schedule = _spec.MaxTokensPerBatch is { } budget
            ? DataSchedule.ByTokens(prep.Train.PaddedRowTokens(), budget, 2 * _spec.SequenceParallelSize, _spec.DataParallelSize,
                _spec.GradientAccumulationSteps, _spec.NumTrainEpochs, _spec.MaxSteps, _spec.Seed)
            : new DataSchedule(prep.TrainCount, _spec.PerDeviceTrainBatchSize, _spec.DataParallelSize, _spec.GradientAccumulationSteps,
                _spec.NumTrainEpochs, _spec.MaxSteps, _spec.Seed);
        _lr = LrSchedule.From(_spec.LrSchedulerType, _spec.LearningRate, _schedule.TotalSteps, _spec.WarmupSteps, _spec.WarmupRatio);
        if (prep.OutputDir != null) Directory.CreateDirectory(prep.OutputDir);
        _resumeFrom = prep.OutputDir != null ? Checkpoints.Resolve(_spec.ResumeFromCheckpoint, prep.OutputDir) : null;
    }

    /// <summary>Called on every rank before each optimizer step (0-based); the process launcher's failure drill uses it.</summary>
    public Action<int, int>? BeforeStep { get; init; }

    /// <param name="ownProcess">The rank is a process of its own: its memory figures are its own, so the
    /// peak is reset once the model is loaded. Either way intra-op threads default to this rank's share of
    /// the machine's cores (cores / ranks, at least 1): more would oversubscribe the cores the ranks share.</param>
    public RankOutcome Run(ICollectives world, AttentionTimer timer, bool ownProcess)
    {
        int sp = _spec.SequenceParallelSize, dp = _spec.DataParallelSize;
        var output = _prep.OutputDir;
        var history = new List<StepMetrics>();
        double[]? firstGradient = null, finalParameters = null;
        int? previousThreads = null;
        int? threads = _options.IntraOpThreadsPerRank ?? Math.Max(1, Environment.ProcessorCount / world.WorldSize);
        if (threads is { } t0) { previousThreads = get_num_threads(); set_num_threads(t0); }
        // World rank = dpRank · sp + spRank: an SP group is contiguous (one host: ring traffic is heavy).
        int spRank = world.Rank % sp, dpRank = world.Rank / sp;
        var spGroup = world.Split(Enumerable.Range(dpRank * sp, sp).ToArray());
        var dpGroup = world.Split(Enumerable.Range(0, dp).Select(d => d * sp + spRank).ToArray());
        var plan = SequenceParallelPlan.Create(_spec.SequenceParallelMode, sp, _prep.Shape.NumAttentionHeads, _prep.Shape.NumKeyValueHeads, _spec.UlyssesDegree);
        var ctx = new RankContext(world, spGroup, dpGroup, full => plan.Shard(full, spRank));
        bool needsReference = TrainingObjectives.NeedsReferenceModel(_spec);
        var (model, reference) = _prep.Models.Create(plan.CreateAttention(spGroup, timer: timer), needsReference);
        foreach (var m in reference is null ? [model] : new[] { model, reference })
        {
            if ((_options.LossChunkTokens ?? _spec.LossChunkTokens) is { } chunk) m.LossChunkTokens = chunk;
            if (_options.MlpTileTokens is { } tile) m.MlpTileTokens = tile;
        }
        try
        {
            int first = 0;
            long tokensBefore = 0;
            // The trainer is built on the initial weights: with precompute_ref_logps it computes the
            // reference log-probs from them (the reference is the model before training, also on resume).
            MemoryProbe.Mark("model_built");
            using var trainer = new RankTrainer(ctx, _spec, model, reference, _schedule, _lr, _prep.Train, _prep.Val, _prep.PadId);
            MemoryProbe.Mark("states_built");
            if (_resumeFrom != null)
            {
                using (trainer.States.WholeWeights())                           // stage 3: loaded whole, kept as this rank's slice
                    _prep.Models.LoadWeights(model, _resumeFrom);                 // in place: the optimizer keeps its tensors
                var st = Checkpoints.Load(_resumeFrom, trainer.States.Optimizer, trainer.States.Range);
                (first, tokensBefore) = (st.GlobalStep, st.TrainedTokens);
            }
            // Records after the step this run starts from belong to a run it replaces: a resume's redone
            // steps, or all of them when a run starts afresh in a used directory (overwrite_output_dir, or
            // a host's restart before the first checkpoint), as LLaMA-Factory deletes the previous log.
            if (ctx.IsMain && output != null) TrainerLog.TruncateAfter(output, first);
            var log = new TrainerLog(output, first, _schedule.TotalSteps, tokensBefore);
            var records = ctx.IsMain && output != null ? TrainerLog.Read(output) : [];
            if (ctx.IsMain) _observer?.OnStart(first, _schedule.TotalSteps);
            var memory = new RankMemory(world, resetPeak: ownProcess);
            double? lastEval = null;
            var window = new MetricWindow();
            trainer.CaptureNextGradient = _options.CaptureFirstGradient;
            bool paused = false;

            for (int step = first; step < _schedule.TotalSteps; step++)
            {
                BeforeStep?.Invoke(world.Rank, step);
                var m = trainer.TrainStep(step);
                int done = step + 1;
                bool last = done == _schedule.TotalSteps;
                if (_prep.Val.Count > 0 && ((_spec.EvalSteps is { } ev && done % ev == 0) || last))
                    lastEval = trainer.Evaluate();
                var (peaks, baselines) = memory.Gather();
                if (ctx.IsMain)
                {
                    history.Add(m);
                    var p = log.Advance(done, m);
                    _observer?.OnStep(p, m);
                    window.Add(m);
                    if (done % _spec.LoggingSteps == 0 || last || done == 1)          // a resumed run logs on the straight run's steps
                    {
                        var rec = log.Record(p, window.Take(), _schedule.EpochAt(done), lastEval, peaks, baselines);
                        if (output != null) { log.Append(rec); records.Add(rec); }
                        _observer?.OnLog(rec);
                        lastEval = null;
                    }
                }
                // Paused by the host: checkpoint this step (the same checkpoint a resume after a crash reads) and stop.
                paused = !last && output != null && PauseRequest.IsRequested(world, ctx.IsMain);
                if (output != null && (done % _spec.SaveSteps == 0 || paused) && !last)
                {
                    using var whole = trainer.States.WholeWeightsOnMain();    // stage 3: the consolidated model.safetensors, gathered where it is written
                    var path = Checkpoints.Save(world, trainer.States, output, done, log.TrainedTokens, _schedule.EpochAt(done),
                        dir => _prep.Models.SaveCheckpoint(model, dir), records, _spec.SaveTotalLimit);
                    if (ctx.IsMain) _observer?.OnCheckpoint(done, path);
                    world.Barrier();                    // nobody runs ahead of a checkpoint being written
                }
                if (paused)
                {
                    if (ctx.IsMain) PauseRequest.MarkHonored(done);
                    break;
                }
                if (done % 8 == 0) NativeMemory.Trim();
            }
            using (trainer.States.WholeWeightsOnMain())                        // every rank takes part; the main rank saves
            if (ctx.IsMain && !paused)
            {
                firstGradient = trainer.CapturedGradient;
                if (_options.CaptureFinalParameters) finalParameters = Flatten(model);
                if (output != null)
                {
                    _prep.Models.SaveFinal(model, output);
                    Checkpoints.WriteTrainerState(output, _schedule.TotalSteps, log.TrainedTokens, _schedule.EpochAt(_schedule.TotalSteps),
                        trainer.States.Step, records);
                }
            }
            var attention = GatherAttention(world, timer);
            var stateBytes = GatherStateBytes(world, trainer.States.Bytes);
            world.Barrier();
            return new RankOutcome(history, firstGradient, finalParameters, attention) { RankModelStateBytes = stateBytes, StateCommunicationSeconds = trainer.States.CommunicationTime.TotalSeconds };
        }
        finally
        {
            model.Dispose();
            reference?.Dispose();
            if (previousThreads is { } t) set_num_threads(t);
        }
    }

    /// <summary>Every rank's attention seconds (forward, backward, wait), in world order (a collective).</summary>
    private static double[][] GatherAttention(ICollectives world, AttentionTimer timer)
    {
        using var mine = tensor(new[] { timer.Forward.TotalSeconds, timer.Backward.TotalSeconds, timer.CommunicationWait.TotalSeconds }, ScalarType.Float64).unsqueeze(0); // (1, 3)
        using var all = world.AllGather(mine, 0);                                                                                                                       // (W, 3)
        var v = all.data<double>().ToArray();
        return Enumerable.Range(0, world.WorldSize).Select(r => v[(3 * r)..(3 * r + 3)]).ToArray();
    }

    /// <summary>Every rank's (weights, gradients, optimizer) bytes, in world order (a collective).</summary>
    private static long[][] GatherStateBytes(ICollectives world, ModelStateBytes bytes)
    {
        using var mine = tensor(new[] { bytes.Weights, bytes.Gradients, bytes.Optimizer }, ScalarType.Int64).unsqueeze(0);   // (1, 3)
        using var all = world.AllGather(mine, 0);                                                                            // (W, 3)
        var v = all.data<long>().ToArray();
        return Enumerable.Range(0, world.WorldSize).Select(r => v[(3 * r)..(3 * r + 3)]).ToArray();
    }

    private static double[] Flatten(Model.CausalLM model)
    {
        using var scope = NewDisposeScope();
        return cat(model.parameters().Select(p => p.detach().flatten().to(ScalarType.Float64)).ToArray()).data<double>().ToArray();
    }
}
