using Toolkit.Checkpoints;
using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Reporting;
using Toolkit.Runs;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// Trains a model (a GPT preset, a checkpoint or a Hugging Face folder) under one PaRO strategy and measures loss,
/// memory per rank, traffic per step and throughput, on in-process ranks, MPI processes or the emulated cluster
/// (through <see cref="JobHost"/>); writes <c>runs/&lt;id&gt;/</c> with metrics, <c>result.json</c> and an offline
/// <c>report.html</c>.
/// </summary>
public sealed class ParoTrainJob : RankJob<ParoTrainOptions, ParoTrainJob.RankOutcome, ParoTrainResult>,
    IRestartableJob<ParoTrainOptions>
{
    /// <summary>Metric names this job records besides <see cref="MetricNames"/>.</summary>
    public static class Metrics
    {
        /// <summary>Bytes of this rank's parameter slice.</summary>
        public const string ParamsBytes = "memory.params_bytes";
        /// <summary>Bytes of this rank's gradient slice.</summary>
        public const string GradsBytes = "memory.grads_bytes";
        /// <summary>Bytes of this rank's optimizer slice.</summary>
        public const string OptimizerBytes = "memory.optimizer_bytes";
        /// <summary>Model states plus the peak transient of a micro-step.</summary>
        public const string PeakBytes = "memory.peak_bytes";
    }


    /// <inheritdoc/>
    public override string Kind => "paro-train";

    /// <inheritdoc/>
    public override string RunName(ParoTrainOptions options) => $"paro-{options.Plan.Strategy.Code.ToLowerInvariant()}";

    /// <summary>Runs the job. <paramref name="progress"/> receives every metric as it is recorded (for MPI runs, as the
    /// run folder is read).</summary>
    public static Task<ParoTrainResult> RunAsync(ParoTrainOptions options, IProgress<MetricPoint>? progress = null,
        CancellationToken cancellationToken = default) =>
        JobHost.RunAsync(new ParoTrainJob(), options, progress, cancellationToken);

    /// <summary>Reads the result a finished run wrote.</summary>
    public static ParoTrainResult ReadResult(string runPath) => JobHost.ReadResult<ParoTrainResult>(runPath);

    /// <inheritdoc/>
    public override RankOutcome RunRank(RankContext<ParoTrainOptions> context)
    {
        var (comm, o) = (context.Comm, context.Options);
        var source = o.Model.Resolve();
        var data = o.Data.Path is null
            ? TokenDataset.SyntheticStories(source.Tokenizer) : TokenDataset.FromTextFile(o.Data.Path,
                source.Tokenizer);
        var length = o.Data.LengthFor(source.Config);
        var training = source.ForTraining(o.Seed, o.Plan.ComputeType);             // every rank starts identical
        using var model = training.Model;
        comm.Algorithm = o.Sharding.Collectives;
        ShardedTrainer trainer;
        using (training.Keep) trainer = ShardedTrainer.Create(model, o.Plan, comm, o.Optimizer, training.Values);
        using var _ = trainer;
        if (o.Checkpoint.ResumeFrom is { } from)
        {
            var resume = CheckpointFolders.Resolve(from, comm.Rank == 0 ? context.Log : null);
            trainer.LoadCheckpoint(resume);
            if (comm.Rank == 0)
            {
                var m = CheckpointManifest.Read(resume);
                context.Log(
                    $"resumed from {resume} at step {m.Step}, written by {m.Strategy} on {m.Ranks} ranks in groups " +
                        $"of {m.GroupSize} ({m.Precision})" +
                    (m.Strategy == o.Plan.Strategy.Code && m.Ranks == comm.Size && m.GroupSize == o.Launch.GroupSize
                     && m.Precision == Options.OptionSpec.EnumName(typeof(ParoPrecision),
                         o.Sharding.Precision) ? "" : "; re-sliced for this plan"));
            }
        }
        // steps continue after a resumed checkpoint, so data and bias correction line up
        var first = (int)trainer.StepsTaken;
        var losses = new double[o.Steps];
        var seconds = new double[o.Steps];
        CommSnapshot traffic = new(new Dictionary<string, OperationTraffic>());
        for (var i = 0; i < o.Steps; i++)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            var step = first + i;
            var micro = Enumerable.Range(0, o.Sharding.Accumulation).Select(a => (Func<TorchSharp.torch.nn.Module,
                Tensor>)(m =>
            {
                // [B, T] each
                var (x, y) = data.Batch(o.Seed, step, a * comm.Size + comm.Rank, o.Data.MicroBatch, length);
                return ((CausalLanguageModel)m).Loss(x, y);
            })).ToList();
            var before = comm.Counters.Snapshot();
            var clock = Stopwatch.StartNew();
            losses[i] = trainer.Step(micro);
            seconds[i] = clock.Elapsed.TotalSeconds;
            traffic = comm.Counters.Snapshot().Since(before);
            RecordStep(context, step, losses[i], seconds[i], traffic, trainer.Memory);
            Restarts.Drill(context.RunPath, comm.Rank, step + 1);
            if (o.Checkpoint.Every > 0 && (step + 1) % o.Checkpoint.Every == 0) Save(context, trainer, source,
                step + 1);
        }
        if (o.Checkpoint.Export is { } export) Export(context, trainer, source, first + o.Steps, export);
        var memory = trainer.Memory;
        return new RankOutcome(comm.Rank, first, losses, seconds, traffic.IntraBytes, traffic.InterBytes,
            new RankMemory(comm.Rank, memory.ParametersBytes, memory.GradientsBytes, memory.OptimizerBytes,
                memory.PeakBytes), trainer.ParameterCount, o.TokensPerStep(length));
    }

    /// <inheritdoc/>
    int IRestartableJob<ParoTrainOptions>.MaxRestarts(ParoTrainOptions options) => options.Checkpoint.MaxRestarts;

    /// <summary>The same run from <paramref name="checkpoint"/>: as many steps as are left to the end the original
    /// options asked for (their own resumed step plus <c>--steps</c>).</summary>
    ParoTrainOptions IRestartableJob<ParoTrainOptions>.ResumeAt(ParoTrainOptions options, string checkpoint,
        int step)
    {
        var start = options.Checkpoint.ResumeFrom is { } from
            ? (int)CheckpointManifest.Read(CheckpointFolders.Resolve(from)).Step : 0;
        return options with { Steps = start + options.Steps - step,
            Checkpoint = options.Checkpoint with { ResumeFrom = checkpoint } };
    }

    /// <inheritdoc/>
    public override ParoTrainResult Finish(JobRun<ParoTrainOptions> run, IReadOnlyList<RankOutcome> outcomes)
    {
        var o = run.Options;
        var steps = Enumerable.Range(0, o.Steps).Select(i => new StepLoss(outcomes[0].FirstStep + i,
            outcomes.Average(r => r.Losses[i]))).ToList();
        // the first step includes warm-up
        var timed = outcomes[0].StepSeconds.Skip(o.Steps > 1 ? 1 : 0).Order().ToList();
        var median = timed[timed.Count / 2];
        var result = new ParoTrainResult(o.Plan.Strategy.Code, o.Launch.Ranks, o.Launch.GroupSize,
            o.Sharding.Accumulation, Options.OptionSpec.EnumName(typeof(ParoPrecision), o.Sharding.Precision),
            outcomes[0].ParameterCount, steps, [.. outcomes.Select(r => r.Memory)],
            new CommPerStep(outcomes.Max(r => r.IntraBytes), outcomes.Max(r => r.InterBytes)),
            new Throughput(median, outcomes[0].TokensPerStep / median),
            run.Path);
        var points = RunReader.ReadAll(run.Path);
        HtmlReport.Write(run.File("report.html"), result.Title, result.Facts(),
        [
            Charts.MetricByRank(points, MetricNames.Loss),
            Charts.MetricByRank(points, MetricNames.InterBytes),
            Charts.MetricByRank(points, MetricNames.IntraBytes),
            Charts.MetricByRank(points, MetricNames.StepSeconds),
        ]);
        return result;
    }

    /// <summary>Collective: a checkpoint of the step, with the model's description beside it (rank 0).</summary>
    private static string Save(RankContext<ParoTrainOptions> context, ShardedTrainer trainer, ModelSource source,
        int step)
    {
        var staging = CheckpointFolders.Staging(context.RunPath, step);
        trainer.SaveCheckpoint(staging);
        if (context.Comm.Rank == 0)
        {
            source.WriteDescription(Path.Combine(staging, ModelSource.DescriptionFolder));
            CheckpointFolders.Publish(context.RunPath, step, context.Options.Checkpoint.Keep, context.Log);
        }
        context.Comm.Barrier();
        return CheckpointFolders.Final(context.RunPath, step);
    }

    /// <summary>Collective: the last step's checkpoint (saved unless it was), then rank 0 writes it as a Hugging Face
    /// folder.</summary>
    private static void Export(RankContext<ParoTrainOptions> context, ShardedTrainer trainer, ModelSource source,
        int step, string folder)
    {
        var checkpoint = CheckpointFolders.Final(context.RunPath, step);
        if (!File.Exists(Path.Combine(checkpoint, CheckpointManifest.FileName))) checkpoint = Save(context, trainer,
            source, step);
        if (context.Comm.Rank == 0)
        {
            CheckpointExport.ToFolder(checkpoint, folder);
            context.Log($"exported the model of step {step} to {folder}");
        }
        context.Comm.Barrier();
    }

    private static void RecordStep(RankContext<ParoTrainOptions> context, int step, double loss, double seconds,
        CommSnapshot traffic, ParoMemory memory)
    {
        context.Record(step, MetricNames.Loss, loss);
        context.Record(step, MetricNames.StepSeconds, seconds);
        context.Record(step, MetricNames.IntraBytes, traffic.IntraBytes);
        context.Record(step, MetricNames.InterBytes, traffic.InterBytes);
        context.Record(step, Metrics.ParamsBytes, memory.ParametersBytes);
        context.Record(step, Metrics.GradsBytes, memory.GradientsBytes);
        context.Record(step, Metrics.OptimizerBytes, memory.OptimizerBytes);
        context.Record(step, Metrics.PeakBytes, memory.PeakBytes);
    }

    /// <summary>What one rank measured.</summary>
    /// <param name="Rank">The rank.</param>
    /// <param name="FirstStep">The first step's index (after a resumed checkpoint, its step).</param>
    /// <param name="Losses">This rank's loss per step.</param>
    /// <param name="StepSeconds">Wall time per step.</param>
    /// <param name="IntraBytes">Bytes sent inside the group in the last step.</param>
    /// <param name="InterBytes">Bytes sent across groups in the last step.</param>
    /// <param name="Memory">Bytes held at the end.</param>
    /// <param name="ParameterCount">Model parameters (Ψ).</param>
    /// <param name="TokensPerStep">Tokens one optimizer step trains on, over all ranks.</param>
    public sealed record RankOutcome(int Rank, int FirstStep, double[] Losses, double[] StepSeconds, long IntraBytes,
        long InterBytes, RankMemory Memory, long ParameterCount, long TokensPerStep);
}
