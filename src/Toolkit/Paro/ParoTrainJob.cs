using System.Diagnostics;
using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Models;
using Toolkit.Reporting;
using Toolkit.Runs;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// Trains a small GPT under one PaRO strategy and measures loss, memory per rank, traffic per step
/// and throughput, on in-process ranks or MPI processes; writes <c>runs/&lt;id&gt;/</c> with metrics,
/// <c>result.json</c> and an offline <c>report.html</c>.
/// </summary>
public static class ParoTrainJob
{
    /// <summary>File name of the result in the run folder.</summary>
    public const string ResultFile = "result.json";

    private static readonly Lock InitGate = new();

    /// <summary>Runs the job. <paramref name="progress"/> receives every metric as it is recorded (for MPI runs, as the run folder is read).</summary>
    public static async Task<ParoTrainResult> RunAsync(ParoTrainOptions options, IProgress<MetricPoint>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var root = RunDirectory.Create(options.RunsDirectory, $"paro-{options.ParsedStrategy.Code.ToLowerInvariant()}", options);
        if (options.Launcher == Launcher.Mpi)
        {
            var path = root.Path;
            root.Dispose();
            return await ParoMpiLauncher.RunAsync(options, path, progress, cancellationToken);
        }
        using var run = root;
        TorchRuntime.EnsureInitialized();
        Devices.ConfigureCpuThreads(options.Ranks);
        var sink = new MetricSink(run, progress);
        var outcomes = await InProcessCluster.RunAsync(options.Ranks, options.GroupSize, comm => TrainRank(comm, options, sink, run.Path, cancellationToken), cancellationToken);
        return Finish(run.Path, options, outcomes);
    }

    /// <summary>The body of one MPI rank (started by <c>toolkit paro train --launcher mpi</c> under mpiexec): trains and, on rank 0, writes the result.</summary>
    public static void RunMpiRank(ParoTrainOptions options, string runPath)
    {
        TorchRuntime.EnsureInitialized();
        using var comm = MpiCluster.InitializeWorld(options.GroupSize);
        if (comm.Size != options.Ranks)
            throw new ArgumentException($"mpiexec started {comm.Size} ranks but the options ask for {options.Ranks}.");
        Devices.ConfigureCpuThreads(MpiCluster.LocalRanksFromLauncher() ?? comm.GroupSize);
        using var run = RunDirectory.Attach(runPath, comm.Rank);
        var outcome = TrainRank(comm, options, new MetricSink(run, null), runPath, CancellationToken.None);
        var all = GatherOutcomes(comm, outcome, options.Steps);
        if (comm.Rank == 0) Finish(runPath, options, all);
        comm.Barrier();
    }

    /// <summary>Reads the result a finished run wrote.</summary>
    public static ParoTrainResult ReadResult(string runPath) =>
        JsonSerializer.Deserialize<ParoTrainResult>(File.ReadAllText(Path.Combine(runPath, ResultFile)), Json)
        ?? throw new InvalidDataException($"{runPath}/{ResultFile} is empty.");

    /// <summary>JSON conventions of results (camelCase).</summary>
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private static RankOutcome TrainRank(Communicator comm, ParoTrainOptions o, MetricSink sink, string runPath, CancellationToken token)
    {
        var data = o.DataPath is null ? TokenDataset.SyntheticStories() : TokenDataset.FromTextFile(o.DataPath);
        var config = o.ModelConfig;
        Gpt model;
        lock (InitGate)   // torch.manual_seed is process-global: ranks in one process take turns so all start identical
        {
            manual_seed(o.Seed);
            model = new Gpt(config);
        }
        using var _ = model;
        comm.Algorithm = CollectiveAlgorithms.Parse(o.Collectives);
        var plan = new ShardingPlan(o.ParsedStrategy, o.GroupSize, o.Accumulation, o.Precision);
        using var trainer = ShardedTrainer.Create(model, plan, comm, new AdamWOptions { LearningRate = o.LearningRate, Beta2 = 0.95, WeightDecay = 0.1 });
        if (o.ResumeFrom is not null) trainer.LoadCheckpoint(o.ResumeFrom);
        var first = (int)trainer.StepsTaken;   // steps continue after a resumed checkpoint, so data and bias correction line up
        var losses = new double[o.Steps];
        var seconds = new double[o.Steps];
        CommSnapshot traffic = new(new Dictionary<string, OperationTraffic>());
        for (var i = 0; i < o.Steps; i++)
        {
            token.ThrowIfCancellationRequested();
            var step = first + i;
            var s = step;
            var micro = Enumerable.Range(0, o.Accumulation).Select(a => (Func<TorchSharp.torch.nn.Module, Tensor>)(m =>
            {
                var (x, y) = data.Batch(o.Seed, s, a * comm.Size + comm.Rank, o.MicroBatch, config.ContextLength);   // [B, T] each
                return ((Gpt)m).Loss(x, y);
            })).ToList();
            var before = comm.Counters.Snapshot();
            var clock = Stopwatch.StartNew();
            losses[i] = trainer.Step(micro);
            seconds[i] = clock.Elapsed.TotalSeconds;
            traffic = comm.Counters.Snapshot().Since(before);
            sink.Record(step, comm.Rank, "loss", losses[i]);
            sink.Record(step, comm.Rank, "step_seconds", seconds[i]);
            sink.Record(step, comm.Rank, "comm.intra_bytes", traffic.IntraBytes);
            sink.Record(step, comm.Rank, "comm.inter_bytes", traffic.InterBytes);
            var memory = trainer.Memory;
            sink.Record(step, comm.Rank, "memory.params_bytes", memory.ParametersBytes);
            sink.Record(step, comm.Rank, "memory.grads_bytes", memory.GradientsBytes);
            sink.Record(step, comm.Rank, "memory.optimizer_bytes", memory.OptimizerBytes);
            sink.Record(step, comm.Rank, "memory.peak_bytes", memory.PeakBytes);
            if (o.CheckpointEvery > 0 && (step + 1) % o.CheckpointEvery == 0)
                trainer.SaveCheckpoint(Path.Combine(runPath, "checkpoints", $"step-{step + 1}"));
        }
        return new RankOutcome(comm.Rank, first, losses, seconds, traffic.IntraBytes, traffic.InterBytes, trainer.Memory, trainer.ParameterCount);
    }

    /// <summary>MPI: every rank's outcome on every rank (after training, so this traffic is not in the measured steps).</summary>
    private static RankOutcome[] GatherOutcomes(Communicator comm, RankOutcome mine, int steps)
    {
        var width = 2 * steps + 7;
        var table = new double[width * comm.Size];
        var row = table.AsSpan(comm.Rank * width, width);
        mine.Losses.CopyTo(row);
        mine.StepSeconds.CopyTo(row[steps..]);
        (row[2 * steps], row[2 * steps + 1], row[2 * steps + 2], row[2 * steps + 3], row[2 * steps + 4], row[2 * steps + 5], row[2 * steps + 6]) =
            (mine.IntraBytes, mine.InterBytes, mine.Memory.ParametersBytes, mine.Memory.GradientsBytes, mine.Memory.OptimizerBytes, mine.Memory.PeakTransientBytes, mine.ParameterCount);
        comm.AllGather<double>(table.AsSpan());
        return Enumerable.Range(0, comm.Size).Select(r =>
        {
            var v = table.AsSpan(r * width, width);
            return new RankOutcome(r, mine.FirstStep, v[..steps].ToArray(), v[steps..(2 * steps)].ToArray(), (long)v[2 * steps], (long)v[2 * steps + 1],
                new ParoMemory((long)v[2 * steps + 2], (long)v[2 * steps + 3], (long)v[2 * steps + 4], (long)v[2 * steps + 5]), (long)v[2 * steps + 6]);
        }).ToArray();
    }

    private static ParoTrainResult Finish(string runPath, ParoTrainOptions o, RankOutcome[] outcomes)
    {
        var steps = Enumerable.Range(0, o.Steps).Select(i => new StepLoss(outcomes[0].FirstStep + i, outcomes.Average(r => r.Losses[i]))).ToList();
        var timed = outcomes[0].StepSeconds.Skip(o.Steps > 1 ? 1 : 0).Order().ToList();   // the first step includes warm-up
        var median = timed[timed.Count / 2];
        var result = new ParoTrainResult(o.ParsedStrategy.Code, o.Ranks, o.GroupSize, o.Accumulation, o.Precision.ToString().ToLowerInvariant(), outcomes[0].ParameterCount,
            steps,
            outcomes.Select(r => new RankMemory(r.Rank, r.Memory.ParametersBytes, r.Memory.GradientsBytes, r.Memory.OptimizerBytes, r.Memory.PeakBytes)).ToList(),
            new CommPerStep(outcomes.Max(r => r.IntraBytes), outcomes.Max(r => r.InterBytes)),
            new Throughput(median, o.TokensPerStep / median),
            runPath);
        File.WriteAllText(Path.Combine(runPath, ResultFile), JsonSerializer.Serialize(result, Json));
        WriteReport(runPath, result);
        return result;
    }

    private static void WriteReport(string runPath, ParoTrainResult r)
    {
        var points = RunReader.ReadAll(runPath);
        var m = r.Memory[0];
        HtmlReport.Write(Path.Combine(runPath, "report.html"), $"PaRO {r.Strategy}: {Path.GetFileName(runPath)}",
        [
            ("strategy / ranks / group size / A / precision", $"{r.Strategy} / {r.Ranks} / {r.GroupSize} / {r.Accumulation} / {r.Precision}"),
            ("parameters", r.ParameterCount.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)),
            ("loss", $"{r.Steps[0].Loss:F4} -> {r.Steps[^1].Loss:F4}"),
            ("rank 0 bytes: params / grads / optimizer / peak", $"{m.ParamsBytes} / {m.GradsBytes} / {m.OptimizerBytes} / {m.PeakBytes}"),
            ("bytes per step: intra / inter", $"{r.Comm.IntraBytesPerStep} / {r.Comm.InterBytesPerStep}"),
            ("median step / tokens per second", $"{r.Throughput.StepSeconds * 1000:F1} ms / {r.Throughput.TokensPerSecond:F0}"),
        ],
        [
            Charts.MetricByRank(points, "loss"),
            Charts.MetricByRank(points, "comm.inter_bytes", "inter-group bytes per step"),
            Charts.MetricByRank(points, "comm.intra_bytes", "intra-group bytes per step"),
            Charts.MetricByRank(points, "step_seconds", "step time (s)"),
        ]);
    }

    private sealed record RankOutcome(int Rank, int FirstStep, double[] Losses, double[] StepSeconds, long IntraBytes, long InterBytes, ParoMemory Memory, long ParameterCount);

    /// <summary>Writes a metric to the run folder and reports it to the caller.</summary>
    private sealed class MetricSink(RunDirectory run, IProgress<MetricPoint>? progress)
    {
        public void Record(int step, int rank, string name, double value)
        {
            run.Metric(step, rank, name, value);
            progress?.Report(new MetricPoint(DateTimeOffset.UtcNow, step, rank, name, value));
        }
    }
}
