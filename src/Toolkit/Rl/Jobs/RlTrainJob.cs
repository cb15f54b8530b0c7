using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Generation;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Paro;
using Toolkit.Reporting;
using Toolkit.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>
/// GRPO on a verifiable task, Ring-1T style: each rank keeps a rollout engine separate from the trainer (its own
/// weights in its own numerics), generates its share of rollouts (synchronously or with C3PO++), scores them, and the
/// policy update runs through the PaRO engine with the chosen mismatch correction; after every update the trainer's
/// weights are sent to the engines (bytes and time measured). A short supervised warm start on the training answers
/// comes first, so rewards start above zero.
/// </summary>
/// <remarks>
/// Each rollout batch gets <see cref="GrpoOptions.PpoEpochs"/> × <see cref="GrpoOptions.MiniBatches"/> optimizer steps
/// (<see cref="PolicyUpdate"/>); the learning rate follows <see cref="RlTrainOptions.LrSchedule"/> per RL step.
/// </remarks>
public sealed class RlTrainJob : RankJob<RlTrainOptions, RlTrainJob.RankOutcome, RlTrainResult>,
    IRestartableJob<RlTrainOptions>
{
    /// <summary>Metric names this job records (rank 0, over all ranks).</summary>
    public static class Metrics
    {
        /// <summary>Mean reward.</summary>
        public const string RewardMean = "rl.reward_mean";
        /// <summary>Held-out accuracy (greedy).</summary>
        public const string HeldOutAccuracy = "rl.heldout_accuracy";
        /// <summary>Gradient norm.</summary>
        public const string GradNorm = "rl.grad_norm";
        /// <summary>Mean |log π_train − log π_infer|.</summary>
        public const string LogProbDiffMean = "rl.logprob_diff_mean";
        /// <summary>Max |log π_train − log π_infer|.</summary>
        public const string LogProbDiffMax = "rl.logprob_diff_max";
        /// <summary>k3 KL(π_infer ‖ π_train).</summary>
        public const string KlInferTrain = "rl.kl_infer_train";
        /// <summary>Masked (or truncated) token fraction.</summary>
        public const string MaskedFraction = "rl.masked_fraction";
        /// <summary>Rollout tokens per second.</summary>
        public const string TokensPerSecond = "rl.tokens_per_second";
        /// <summary>Mean response length.</summary>
        public const string ResponseLength = "rl.response_length";
        /// <summary>Policy entropy.</summary>
        public const string Entropy = "rl.entropy";
        /// <summary>Share of response tokens the trainer routed to other experts than the rollout engine (moe; mean
        /// over layers, and per layer with a <c>.layerL</c> suffix).</summary>
        public const string RoutingFlips = "rl.routing_flips";
        /// <summary>Share of kept tokens where the PPO clip bound.</summary>
        public const string ClipFraction = "rl.clip_fraction";
        /// <summary>The step's learning rate.</summary>
        public const string LearningRate = "rl.lr";
    }

    /// <inheritdoc/>
    public override string Kind => "rl-train";

    /// <inheritdoc/>
    public override string RunName(RlTrainOptions options) => $"rl-{options.Task}";

    /// <summary>Runs the job; <paramref name="progress"/> receives every metric as it is recorded.</summary>
    public static Task<RlTrainResult> RunAsync(RlTrainOptions options, IProgress<MetricPoint>? progress = null,
        CancellationToken cancellationToken = default) =>
        JobHost.RunAsync(new RlTrainJob(), options, progress, cancellationToken);

    /// <inheritdoc/>
    public override RankOutcome RunRank(RankContext<RlTrainOptions> context)
    {
        var (comm, o) = (context.Comm, context.Options);
        var task = o.TaskDefinition;
        var model = o.ResolvePolicy();
        var (config, tokens) = (model.Config, new TaskTokens(model.Tokenizer));
        var training = model.ForTraining(o.Seed);                                    // every rank starts identical
        using var policy = training.Model;
        var plan = new ShardingPlan(ShardingStrategy.Parse(o.Strategy), o.Launch.GroupSize);
        ShardedTrainer trainer;
        using (training.Keep) trainer = ShardedTrainer.Create(policy, plan, comm,
            o.Optimizer with { LearningRate = o.WarmupLr }, training.Values);
        using var _ = trainer;
        var train = TaskDatasets.Load(task, heldOut: false);
        var evaluation = new Evaluation(task, TaskDatasets.Load(task, heldOut: true), train, config, tokens);
        var resume = o.Checkpoint.ResumeFrom is { } from
            ? Checkpoints.CheckpointFolders.Resolve(from, comm.Rank == 0 ? context.Log : null) : null;
        var state = resume is null
            ? WarmStart(context, trainer, train, tokens, evaluation) : RlCheckpoint.ReadRun(resume);
        // RL starts with fresh moments: the warm start's large gradients would otherwise damp its first updates
        trainer.ResetOptimizer(o.Optimizer);
        if (resume is not null)
        {
            trainer.LoadCheckpoint(resume);
            context.Log($"resumed from {resume} at RL step {state.NextStep}");
        }
        var flat = trainer.GatherParameters();
        var referenceValues = o.Loss.KlCoefficient <= 0 ? null
            : resume is null ? flat : RlCheckpoint.ReadReference(resume) ?? flat;
        using var engine = new GenerationEngine(config, o.Rollout.Precision, o.Rollout.Pool, o.Rollout.Sampling,
            tokens.Stop,
            task.MaxCompletionTokens, o.Seed * 1_000_003L + comm.Rank, context: evaluation.Context,
            routerFp32: o.Rollout.RouterFp32);
        using var reference = referenceValues is null ? null : ModelSource.FromValues(config, referenceValues);
        var version = state.Version;
        var syncBytes = engine.LoadWeights(flat, version).Bytes;
        double syncSeconds;
        var prompts = new PromptStream(train, o.Seed * 7919 + comm.Rank, tokens);
        var budget = o.Rollout.Budget / comm.Size;
        using var update = new PolicyUpdate(trainer, task, tokens, o, config, reference, budget);
        IRolloutSource source = o.Rollout.Mode == RolloutMode.Sync
            ? new SynchronousRollouts(engine, prompts, o.Rollout.Prompts / comm.Size, o.Rollout.Samples)
            : new C3poPartitioner(engine, prompts, o.Rollout.Samples, budget, o.Rollout.Staleness,
                o.Rollout.InflightUpdate);
        if (resume is not null)
        {
            var saved = RlCheckpoint.ReadRank(resume, comm.Rank);
            engine.SamplerState = saved.Sampler;
            prompts.Skip(saved.PromptsDrawn);
            if (saved.Pool is { } pool) ((C3poPartitioner)source).Restore(pool);
        }
        var sampling = o.Rollout.DynamicSampling
            ? new DynamicSampling(source, update.Informative, o.Rollout.MaxSampleBatches) : null;
        var steps = state.Steps.ToList();
        var clock = Stopwatch.StartNew();
        for (var step = state.NextStep; step < o.Steps; step++)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            var rate = o.Optimizer.LearningRate * o.LrSchedule.Factor(step, o.Steps);
            trainer.Optimizer = trainer.Optimizer with { LearningRate = rate };
            var batch = (sampling ?? source).Next();
            var stats = update.Run(batch, version, flat);
            var sync = Stopwatch.StartNew();
            flat = trainer.GatherParameters();
            syncBytes = engine.LoadWeights(flat, ++version, keepCache: o.Rollout.InflightUpdate).Bytes;
            syncSeconds = sync.Elapsed.TotalSeconds;
            var accuracy = (step + 1) % o.EvalEvery == 0 || step == o.Steps - 1 ? evaluation.Run(comm,
                flat) : double.NaN;
            var record = Aggregate(comm, step, batch, stats, accuracy, syncSeconds, syncBytes,
                sampling?.Dropped ?? 0) with { LearningRate = rate };
            Guard(record, stats.GradNormMax, o);
            steps.Add(record);
            if (comm.Rank == 0) RecordMetrics(context, record);
            Restarts.Drill(context.RunPath, comm.Rank, step + 1);
            if (step == o.Steps - 1 || o.Checkpoint.Every > 0 && (step + 1) % o.Checkpoint.Every == 0)
                RlCheckpoint.Save(context.RunPath, step + 1, trainer, model, comm,
                    state with { NextStep = step + 1, Version = version, Steps = steps },
                    new RlRankState(engine.SamplerState, prompts.Drawn, (source as C3poPartitioner)?.Save()),
                    referenceValues, o.Checkpoint.Keep, context.Log);
        }
        if (o.Export is { } export && comm.Rank == 0) Export(context, model, flat, export);
        return new RankOutcome(state.InitialAccuracy, state.WarmStartAccuracy, steps[^1].HeldOutAccuracy, steps,
            state.WarmStartSeconds, clock.Elapsed.TotalSeconds);
    }

    /// <inheritdoc/>
    int IRestartableJob<RlTrainOptions>.MaxRestarts(RlTrainOptions options) => options.Checkpoint.MaxRestarts;

    /// <summary>The same run from <paramref name="checkpoint"/> (<c>--steps</c> is where an RL run ends).</summary>
    RlTrainOptions IRestartableJob<RlTrainOptions>.ResumeAt(RlTrainOptions options, string checkpoint, int step) =>
        options with { Checkpoint = options.Checkpoint with { ResumeFrom = checkpoint } };

    /// <summary>Writes the trained policy (a flat vector in module order) as a Hugging Face folder described like its
    /// model.</summary>
    private static void Export(RankContext<RlTrainOptions> context, ModelSource model, float[] flat, string folder)
    {
        using var values = tensor(flat);
        HfExport.Write(folder, model.Config, new TensorParameterSource(values), model.DType, model.DescriptionSource);
        context.Log($"exported the policy to {folder}");
    }

    /// <inheritdoc/>
    public override RlTrainResult Finish(JobRun<RlTrainOptions> run, IReadOnlyList<RankOutcome> outcomes)
    {
        var o = outcomes[0];
        var result = new RlTrainResult(run.Options, o.InitialAccuracy, o.WarmStartAccuracy, o.FinalAccuracy, o.Steps,
            o.WarmStartSeconds, o.Seconds, run.Path);
        var points = RunReader.ReadAll(run.Path);
        HtmlReport.Write(run.File("report.html"), result.Title, result.Facts(),
            [.. new[] { Metrics.RewardMean, Metrics.HeldOutAccuracy, Metrics.GradNorm, Metrics.LogProbDiffMax,
                Metrics.KlInferTrain, Metrics.MaskedFraction, Metrics.TokensPerSecond }
                .Select(m => Charts.MetricByRank(points, m))]);
        return result;
    }

    /// <summary>Supervised steps on reference answers (teacher forcing; loss on the answer and its stop token), with
    /// held-out accuracy before and after; the state an RL phase starts from.</summary>
    private static RlRunState WarmStart(RankContext<RlTrainOptions> context, ShardedTrainer trainer,
        IReadOnlyList<Problem> train, TaskTokens tokens, Evaluation evaluation)
    {
        var o = context.Options;
        var initial = evaluation.Run(context.Comm, trainer.GatherParameters());
        var clock = Stopwatch.StartNew();
        var random = new Random(o.Seed * 31 + context.Comm.Rank);
        for (var step = 0; step < o.WarmupSteps; step++)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            var problems = Enumerable.Range(0, o.WarmupBatch).Select(_ => train[random.Next(train.Count)]).ToList();
            var loss = trainer.Step([m =>
            {
                var (inputs, targets) = ResponseScoring.SupervisedBatch(problems, tokens);            // [B, L] each
                var policy = (CausalLanguageModel)m;
                var logits = policy.call(inputs).to(ScalarType.Float32);                              // [B, L, V]
                var loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[2]), targets.view(-1),
                    ignore_index: -100);
                if (policy.LoadBalancingLoss() is not { } balance) return loss;
                // held for the call (TK0001)
                using var weight = o.LoadBalance.ToScalar();
                return loss + balance * weight;
            }]);
            if (context.Comm.Rank == 0
                && (step % 10 == 0 || step == o.WarmupSteps - 1)) context.Record(step - o.WarmupSteps,
                    "rl.warmup_loss", loss);
        }
        var seconds = clock.Elapsed.TotalSeconds;
        var warm = evaluation.Run(context.Comm, trainer.GatherParameters());
        context.Log($"held-out accuracy {initial:F3} initially, {warm:F3} after {o.WarmupSteps} warm-start steps");
        return new RlRunState(0, 1, context.Comm.Size, initial, warm, seconds, []);
    }

    /// <summary>The step's diagnostics over all ranks (sums and maxima all-reduced).</summary>
    private static RlStep Aggregate(Communicator comm, int step, RolloutBatch batch, UpdateStats u, double accuracy,
        double syncSeconds, long syncBytes, int dropped)
    {
        const int Bins = PolicyUpdate.StalenessBins;
        var d = u.Diagnostics;
        var masked = d.MaskedFraction * d.Tokens;
        double[] sums =
        [
            u.RewardSum, u.RewardSquares, u.Responses, u.Malformed, d.Tokens, d.LogProbDiffMean * d.Tokens,
                d.KlInferTrain * d.Tokens, masked,
            double.IsNaN(d.EntropyMasked) ? 0 : d.EntropyMasked * masked,
                double.IsNaN(d.EntropyKept) ? 0 : d.EntropyKept * (d.Tokens - masked),
            u.EntropySum, u.SampledLogProbSum, batch.SampledTokens, batch.Carried, batch.Purged,
                u.ClipFraction * d.Tokens, dropped, .. u.Staleness, .. u.RoutingFlips,
        ];
        // the rollout split (prefill, decode) is each part's largest over ranks
        double[] maxima = [d.LogProbDiffMax, batch.Seconds, u.Seconds, syncSeconds, u.Current.LogProbDiffMax,
            u.Stale.LogProbDiffMax, batch.PrefillSeconds, batch.DecodeSeconds];
        // current and stale tokens' sums (5 each), then the tokens fed again and those thrown away
        double[] split = [.. Split(u.Current, u.RoutingFlips.Zip(u.StaleRoutingFlips, (a, b) => a - b).ToArray()),
            .. Split(u.Stale, u.StaleRoutingFlips), batch.PrefixTokens, batch.WastedTokens];
        comm.AllReduce<double>(sums);
        comm.AllReduce<double>(maxima, ReduceOp.Max);
        comm.AllReduce<double>(split);
        var (responses, tokens) = (sums[2], sums[4]);
        var mean = sums[0] / responses;
        return new RlStep(step, mean, Math.Sqrt(Math.Max(0, sums[1] / responses - mean * mean)), sums[3] / responses,
            accuracy, u.GradNorm,
            sums[5] / tokens, maxima[0], sums[6] / tokens, sums[7] / tokens,
                sums[7] > 0 ? sums[8] / sums[7] : double.NaN,
            tokens > sums[7] ? sums[9] / (tokens - sums[7]) : double.NaN, sums[10] / tokens, sums[11] / tokens,
                tokens / responses,
            sums[12] / maxima[1], maxima[1], maxima[2], maxima[3], syncBytes, (long)responses, (long)sums[13],
                (long)sums[14],
            [.. sums[17..(17 + Bins)].Select(v => (long)v)], [.. sums[(17 + Bins)..].Select(f => f / tokens)])
        {
            ClipFraction = sums[15] / tokens, DroppedGroups = (int)sums[16],
            PrefillSeconds = maxima[6], DecodeSeconds = maxima[7], PrefixTokens = (long)split[10],
            WastedTokens = (long)split[11],
            Current = Diagnostics(split[..5], maxima[4], tokens, u.RoutingFlips.Length),
            Stale = Diagnostics(split[5..10], maxima[5], tokens, u.RoutingFlips.Length),
        };
    }

    /// <summary>Sums over one kind of token: count, Σ|Δ log p|, Σ k3, masked count, routing flips (summed over
    /// layers).</summary>
    private static double[] Split(MismatchDiagnostics d, double[] flips) =>
        [d.Tokens, d.LogProbDiffMean * d.Tokens, d.KlInferTrain * d.Tokens, d.MaskedFraction * d.Tokens, flips.Sum()];

    private static VersionDiagnostics Diagnostics(double[] sums, double max, double tokens, int layers)
    {
        var n = sums[0];
        double Mean(double sum) => n > 0 ? sum / n : double.NaN;
        return new VersionDiagnostics(tokens > 0 ? n / tokens : double.NaN, Mean(sums[1]), n > 0 ? max : double.NaN,
            Mean(sums[2]), Mean(sums[3]), layers > 0 ? Mean(sums[4] / layers) : double.NaN);
    }

    /// <summary>Stops a diverging run with the step and the diagnostic that crossed its limit (the run folder keeps
    /// everything so far).</summary>
    private static void Guard(RlStep s, double gradNormMax, RlTrainOptions o)
    {
        if (!double.IsFinite(gradNormMax) || gradNormMax > o.StopGradNorm)
            throw new RlDivergedException(
                $"RL step {s.Step}: the gradient norm {gradNormMax:G4} crossed --stop-grad-norm {o.StopGradNorm:G4}; " +
                    $"the run diverged (run folder kept).");
        if (!double.IsFinite(s.LogProbDiffMean) || !double.IsFinite(s.KlInferTrain))
            throw new RlDivergedException(
                $"RL step {s.Step}: the mismatch diagnostics are not finite (|dlogp| {s.LogProbDiffMean}, " +
                    $"KL {s.KlInferTrain}); the run diverged (run folder kept).");
    }

    private static void RecordMetrics(RankContext<RlTrainOptions> context, RlStep s)
    {
        context.Record(s.Step, Metrics.RewardMean, s.RewardMean);
        if (!double.IsNaN(s.HeldOutAccuracy)) context.Record(s.Step, Metrics.HeldOutAccuracy, s.HeldOutAccuracy);
        context.Record(s.Step, Metrics.GradNorm, s.GradNorm);
        context.Record(s.Step, Metrics.LogProbDiffMean, s.LogProbDiffMean);
        context.Record(s.Step, Metrics.LogProbDiffMax, s.LogProbDiffMax);
        context.Record(s.Step, Metrics.KlInferTrain, s.KlInferTrain);
        context.Record(s.Step, Metrics.MaskedFraction, s.MaskedFraction);
        context.Record(s.Step, Metrics.TokensPerSecond, s.TokensPerSecond);
        context.Record(s.Step, Metrics.ResponseLength, s.ResponseLength);
        context.Record(s.Step, Metrics.Entropy, s.Entropy);
        context.Record(s.Step, Metrics.ClipFraction, s.ClipFraction);
        context.Record(s.Step, Metrics.LearningRate, s.LearningRate);
        if (s.RoutingFlips.Count > 0) context.Record(s.Step, Metrics.RoutingFlips, s.RoutingFlips.Average());
        for (var l = 0; l < s.RoutingFlips.Count; l++) context.Record(s.Step, $"{Metrics.RoutingFlips}.layer{l}",
            s.RoutingFlips[l]);
        // C3PO++: the diagnostics of current and stale tokens apart (suffixes .current and .stale)
        if (s.Stale is not { TokenFraction: > 0 }) return;
        foreach (var (kind, v) in new[] { ("current", s.Current!), ("stale", s.Stale) })
        {
            context.Record(s.Step, $"{Metrics.KlInferTrain}.{kind}", v.KlInferTrain);
            context.Record(s.Step, $"{Metrics.LogProbDiffMax}.{kind}", v.LogProbDiffMax);
            context.Record(s.Step, $"{Metrics.MaskedFraction}.{kind}", v.MaskedFraction);
            if (!double.IsNaN(v.RoutingFlips)) context.Record(s.Step, $"{Metrics.RoutingFlips}.{kind}", v.RoutingFlips);
        }
    }

    /// <summary>
    /// Held-out accuracy with greedy decoding by an fp32 engine (the trainer's policy itself), on rank 0 (NaN
    /// elsewhere); the engine's cache holds the longest prompt (held-out or training) and answer.
    /// </summary>
    private sealed class Evaluation(VerifiableTask task, IReadOnlyList<Problem> problems,
        IReadOnlyList<Problem> train, IModelConfig config, TaskTokens tokens)
    {
        private readonly long[][] _prompts = [.. problems.Select(tokens.Prompt)];

        public int Context { get; } = Math.Min(config.ContextLength,
            problems.Concat(train).Max(p => tokens.Prompt(p).Length) + task.MaxCompletionTokens + 1);

        public double Run(Communicator comm, float[] flat)
        {
            if (comm.Rank != 0) return double.NaN;
            using var engine = new GenerationEngine(config, Numerics.Fp32, Math.Min(64, problems.Count),
                new SamplingOptions { Temperature = 0 },
                tokens.Stop, task.MaxCompletionTokens, seed: 0, context: Context);
            engine.LoadWeights(flat, 0);
            var sequences = problems.Select((p, i) => new Sequence(i, _prompts[i], p)).ToList();
            foreach (var s in sequences) engine.Enqueue(s);
            engine.RunToCompletion();
            return sequences.Count(s => task.Judge((Problem)s.Tag!,
                tokens.Completion(s)).IsCorrect) / (double)sequences.Count;
        }
    }

    /// <summary>What one rank returns (rank 0's carries the global diagnostics and the held-out accuracies).</summary>
    /// <param name="InitialAccuracy">Before training.</param>
    /// <param name="WarmStartAccuracy">After the warm start.</param>
    /// <param name="FinalAccuracy">After the last step.</param>
    /// <param name="Steps">Per step, over all ranks.</param>
    /// <param name="WarmStartSeconds">Warm-start time.</param>
    /// <param name="Seconds">RL time.</param>
    public sealed record RankOutcome(double InitialAccuracy, double WarmStartAccuracy, double FinalAccuracy,
        IReadOnlyList<RlStep> Steps, double WarmStartSeconds, double Seconds);
}

/// <summary>An RL run stopped because a diagnostic crossed its limit; the message names the step and the
/// diagnostic.</summary>
public sealed class RlDivergedException(string message) : JobFailedException(message);
