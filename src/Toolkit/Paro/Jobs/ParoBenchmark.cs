using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Options;
using Toolkit.Runtime;

namespace Toolkit.Paro;

/// <summary>Options of <c>toolkit bench paro</c>: the job every strategy runs, and which launchers and accumulations to
/// measure.</summary>
internal sealed record ParoBenchmarkOptions : ICheckedOptions
{
    /// <summary>Ranks, groups and the emulated cluster; the benchmark picks the launchers itself (in-process, then MPI,
    /// then emulated). Default 4 ranks in groups of 2.</summary>
    [OptionGroup(Exclude = ["launcher", "nodes", "ranks-per-node", "gpus-per-node", "partition", "time", "account",
        "slurm-args", "slurm-submit"])] public LaunchOptions Launch { get; init; } = new();

    /// <summary>The model. Default the small GPT.</summary>
    [OptionGroup] public ModelOptions Model { get; init; } = new() { Name = "small" };

    /// <summary>Micro-batch (and training text). Default 4 sequences.</summary>
    [OptionGroup] public TextDataOptions Data { get; init; } = new() { MicroBatch = 4 };

    /// <summary>Steps per run. Default 8.</summary>
    [Option("Steps per run (the first is warm-up and not timed).")] public int Steps { get; init; } = 8;

    /// <summary>Accumulation values to run (A). Default 1,4.</summary>
    [Option("Accumulation values (A) to run, comma-separated.",
        Name = "accumulation")] public string Accumulations { get; init; } = "1,4";

    /// <summary>Rounds of every run. Default 1.</summary>
    [Option("Rounds: every run is repeated this many times, interleaved (each round runs every strategy, in an order " +
        "rotated from round to round), so drift of the machine hits all strategies alike; a run's step time is its " +
            "median over rounds, and how well the rounds agree with each other (their mean pairwise Spearman) is " +
                "reported next to the prediction's: when two measurements of the same runs hardly agree, the " +
                    "strategies differ less than the noise and no ranking of them can be checked.")]
    public int Rounds { get; init; } = 1;

    /// <summary>Skip the MPI runs even when MPI is available. Default false.</summary>
    [Option("Skip the runs on MPI processes.")] public bool SkipMpi { get; init; }

    /// <summary>The accumulations as numbers.</summary>
    [JsonIgnore] public IReadOnlyList<int> AccumulationList => Units.ParseList(Accumulations, a => int.TryParse(a,
        out var v) && v > 0 ? v
        : throw new ArgumentOutOfRangeException(nameof(Accumulations), Accumulations,
            $"takes positive integers separated by commas ('{a}' is not one)"));

    /// <summary>The job every strategy runs (its strategy, accumulation and launcher are replaced per run).</summary>
    [JsonIgnore] public ParoTrainOptions Job => new() { Launch = Launch with { Launcher = Launcher.InProcess,
        Emulate = null, NicsPerNode = 1 }, Model = Model, Data = Data, Steps = Steps };

    /// <inheritdoc/>
    public void Check()
    {
        Job.Validate();
        (Launch with { Launcher = Launcher.Mpi }).Validate();   // the emulated runs are MPI runs
        _ = AccumulationList;
        if (Rounds < 1) throw new ArgumentOutOfRangeException(nameof(Rounds), Rounds, "must be at least 1");
    }
}

/// <summary>
/// Runs every trained strategy for a fixed number of steps on in-process ranks (and MPI processes
/// when available), calibrates the cost model on this machine, and reports measured step time,
/// tokens/s, bytes and memory next to the prediction, with the ranking agreement.
/// </summary>
internal static class ParoBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="log"/> receives a line per run.</summary>
    public static async Task<ParoBenchmarkReport> RunAsync(ParoBenchmarkOptions options, Action<string>? log = null,
        CancellationToken cancellationToken = default)
    {
        options.Check();
        var accumulations = options.AccumulationList;
        var cluster = CostModelCalibration.Measure(options.Job);
        log?.Invoke($"calibrated inproc: {Describe(cluster)}");
        var mpiNote = MpiLauncher.Find() is null
            || MpiLibrary.Probe() is null ? "MPI not available: " + MpiLibrary.MissingMessage() : null;
        var setups = new List<(string Name, ParoTrainOptions Job, ClusterSpec Cluster)> { ("inproc",
            options.Job with { Launch = options.Job.Launch with { Launcher = Launcher.InProcess } }, cluster) };
        async Task Add(string name, ParoTrainOptions job)
        {
            // Calibrated where the job runs: the same launcher, links, co-located ranks and transport.
            var measured = await CostModelCalibration.MeasureAsync(job, cancellationToken);
            log?.Invoke($"calibrated {name}: {Describe(measured)}");
            setups.Add((name, job, measured));
        }
        if (!options.SkipMpi && mpiNote is null) await Add("mpi",
            options.Job with { Launch = options.Job.Launch with { Launcher = Launcher.Mpi } });
        if (options.Launch.Emulate is { } shape && mpiNote is null) await Add($"emulated {shape}",
            options.Job with { Launch = options.Launch with { Launcher = Launcher.Mpi } });
        // Every run once per round, rounds one after another, so a slow spell of the machine hits every strategy alike.
        var runs = new Dictionary<(string Launcher, int Accumulation, string Strategy), (ParoTrainOptions Job,
            ClusterSpec Machine, List<ParoTrainResult> Results)>();
        for (var round = 1; round <= options.Rounds; round++)
            foreach (var (name, baseJob, machine) in setups)
                foreach (var a in accumulations)
                    foreach (var strategy in Rotated(ShardingStrategy.Trained, round - 1))
                    {
                        var job = baseJob with { Sharding = baseJob.Sharding with { Strategy = strategy.Code,
                            Accumulation = a } };
                        var result = await ParoTrainJob.RunAsync(job, null, cancellationToken);
                        var key = (name, a, strategy.Code);
                        if (!runs.TryGetValue(key, out var run)) runs[key] = run = (job, machine, []);
                        run.Results.Add(result);
                        var which = options.Rounds > 1 ? $" round {round}" : "";
                        var step = result.Throughput.StepSeconds * 1000;
                        log?.Invoke($"{name,-6} {strategy.Code} A={a}{which}: {step,8:F1} ms measured, " +
                            $"{result.Throughput.TokensPerSecond,9:F0} tokens/s");
                    }
        var rows = new List<BenchmarkRow>();
        var config = options.Job.Model.Resolve().Config;                            // every setup trains this model
        foreach (var ((name, a, code), (job, machine, results)) in runs)
        {
            var last = results[^1];
            var rounds = results.Select(r => r.Throughput.StepSeconds).ToList();
            var step = Statistics.MidpointMedian(rounds);
            var predicted = Predict(job, config, machine, last.ParameterCount);
            var tokens = job.TokensPerStep(job.Data.LengthFor(config));
            rows.Add(new BenchmarkRow(name, code, a, step, tokens / step, last.Comm.IntraBytesPerStep,
                last.Comm.InterBytesPerStep, last.Memory,
                predicted.StepSeconds, predicted.IntraBytesPerStep, predicted.InterBytesPerStep,
                    (predicted.StepSeconds - step) / step, last.Steps[^1].Loss) { RoundStepSeconds = rounds });
            log?.Invoke(
                $"{name,-6} {code} A={a}: {step * 1000,8:F1} ms measured{(options.Rounds > 1 ? " (median of " +
                    "rounds)" : "")}, {predicted.StepSeconds * 1000,8:F1} ms predicted");
        }
        var rankings = rows.GroupBy(r => (r.Launcher, r.Accumulation)).Select(g => Ranking.Of(g.Key.Launcher,
            g.Key.Accumulation, g.ToList())).ToList();
        var overhead = new List<EngineOverheadRow>();
        foreach (var a in accumulations)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var baseline = EngineOverhead.Measure(options.Job with { Sharding = options.Job.Sharding with { Strategy
                = "NNN", Accumulation = a } });
            overhead.Add(EngineOverheadRow.Of(a, baseline));
            log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"engine  NNN A={a}: step {baseline.EngineStepSeconds * 1000:F1} ms, a plain DDP " +
                    $"step {baseline.PlainStepSeconds * 1000:F1} ms: overhead {overhead[^1].OverPlainStep:F2}x; " +
                        $"parts alone: forward+backward {baseline.ForwardBackwardSeconds * 1000:F1} ms, " +
                            $"all-reduce {baseline.AllReduceSeconds * 1000:F1} ms, " +
                                $"AdamW {baseline.OptimizerSeconds * 1000:F1} ms " +
                                    $"(unfused {baseline.UnfusedOptimizerSeconds * 1000:F1} ms); step over " +
                                        $"forward+backward and all-reduce {overhead[^1].OverComputeAndAllReduce:F2}x"));
        }
        return new ParoBenchmarkReport(options.Job, cluster, rows, rankings, mpiNote, overhead,
            setups.ToDictionary(s => s.Name, s => s.Cluster));
    }

    /// <summary><paramref name="items"/> starting at index <paramref name="shift"/> (mod the count): each round runs
    /// the strategies in another order, so a strategy's place in a round is not shared by all rounds.</summary>
    private static IEnumerable<T> Rotated<T>(IReadOnlyList<T> items, int shift) =>
        Enumerable.Range(0, items.Count).Select(i => items[(i + shift) % items.Count]);

    private static string Describe(ClusterSpec c) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"intra {c.IntraBandwidth / 1e9:F2} GB/s ({c.IntraLatency * 1e6:F0} us), inter {c.InterBandwidth / 1e9:F3} " +
            $"GB/s ({c.InterLatency * 1e6:F0} us), compute {c.ComputeFlops / 1e9:F2} GFLOP/s, " +
                $"optimizer {c.MemoryBandwidth / 1e9:F1} GB/s per rank");

    /// <summary>The cost model for the engine's schedule on this machine (one parameter gather per micro-step,
    /// whole-model gathering, Ψ padded).</summary>
    private static StrategyEstimate Predict(ParoTrainOptions job, IModelConfig config, ClusterSpec cluster,
        long parameters)
    {
        var ranks = job.Launch.Ranks;
        var padded = (parameters + ranks - 1) / ranks * ranks;
        return CostModel.Estimate(job.Plan.Strategy, new ModelSpec(job.Model.Name, padded, padded, config.Layers,
            config.Hidden), cluster,
            new TrainingSpec(job.Sharding.Accumulation, job.Data.MicroBatch, job.Data.LengthFor(config),
                job.Sharding.Precision, 1, GatherGranularity.Model));
    }
}

/// <summary>Everything the benchmark measured.</summary>
/// <param name="Job">The job each strategy ran.</param>
/// <param name="Calibration">The machine constants fitted by <see cref="CostModelCalibration"/>.</param>
/// <param name="Runs">One row per launcher, accumulation and strategy.</param>
/// <param name="Rankings">Predicted vs measured order per launcher and accumulation.</param>
/// <param name="MpiNote">Why MPI runs are missing, if they are.</param>
/// <param name="EngineOverhead">Per accumulation, the in-process DDP (NNN) step against its parts timed alone (<see
/// cref="Paro.EngineOverhead"/>).</param>
/// <param name="Calibrations">The constants each launcher's predictions used, measured under that launcher (inproc,
/// mpi, emulated GxM).</param>
internal sealed record ParoBenchmarkReport(ParoTrainOptions Job, ClusterSpec Calibration,
    IReadOnlyList<BenchmarkRow> Runs, IReadOnlyList<Ranking> Rankings, string? MpiNote,
    IReadOnlyList<EngineOverheadRow> EngineOverhead, IReadOnlyDictionary<string, ClusterSpec> Calibrations);

/// <summary>One benchmarked run.</summary>
/// <param name="Launcher">inproc or mpi.</param>
/// <param name="Strategy">Strategy code.</param>
/// <param name="Accumulation">A.</param>
/// <param name="StepSeconds">Measured median step time (with several rounds, the median of the rounds' medians, the
/// mean of the middle two for an even count).</param>
/// <param name="TokensPerSecond">Measured throughput.</param>
/// <param name="IntraBytesPerStep">Measured bytes per rank per step inside groups.</param>
/// <param name="InterBytesPerStep">Measured bytes per rank per step across groups.</param>
/// <param name="Memory">Measured bytes per rank.</param>
/// <param name="PredictedStepSeconds">Calibrated cost model's step time.</param>
/// <param name="PredictedIntraBytesPerStep">Cost model's intra bytes.</param>
/// <param name="PredictedInterBytesPerStep">Cost model's inter bytes.</param>
/// <param name="StepTimeError">(predicted − measured) / measured.</param>
/// <param name="FinalLoss">Loss at the last step.</param>
internal sealed record BenchmarkRow(string Launcher, string Strategy, int Accumulation, double StepSeconds,
    double TokensPerSecond,
    long IntraBytesPerStep, long InterBytesPerStep, IReadOnlyList<RankMemory> Memory, double PredictedStepSeconds,
    double PredictedIntraBytesPerStep, double PredictedInterBytesPerStep, double StepTimeError, double FinalLoss)
{
    /// <summary>The median step time of each round (<see cref="StepSeconds"/> is their median).</summary>
    public IReadOnlyList<double> RoundStepSeconds { get; init; } = [];
}

/// <summary>How well the predicted order of strategies matches the measured one.</summary>
/// <param name="Launcher">inproc or mpi.</param>
/// <param name="Accumulation">A.</param>
/// <param name="MeasuredOrder">Strategies fastest first, measured.</param>
/// <param name="PredictedOrder">Strategies fastest first, predicted.</param>
/// <param name="Spearman">Spearman rank correlation with ties (1 = same order; strategies predicted equal share a
/// rank).</param>
/// <param name="KendallTau">Kendall's tau-b (1 = same order; ties as for Spearman).</param>
/// <param name="MeanAbsoluteError">Mean |predicted − measured| / measured step time.</param>
internal sealed record Ranking(string Launcher, int Accumulation, IReadOnlyList<string> MeasuredOrder,
    IReadOnlyList<string> PredictedOrder,
    double Spearman, double KendallTau, double MeanAbsoluteError)
{
    /// <summary>With several rounds, the mean Spearman between every two rounds' measured times: how well two
    /// measurements of the same runs agree (null with one round).</summary>
    public double? RoundsAgreement { get; init; }

    /// <summary>The strategy the calibrated model predicts fastest: what the advisor would recommend (of strategies
    /// predicted equal, the first in <see cref="ShardingStrategy.Trained"/>'s order).</summary>
    public string Recommended => PredictedOrder.Count > 0 ? PredictedOrder[0] : "";

    /// <summary>Measured step time of <see cref="Recommended"/> over the measured fastest one's (1 = the advisor picked
    /// the fastest).</summary>
    public double RecommendedOverBest { get; init; } = 1;

    /// <summary>Measured step time of ZeRO-3 (GGG) over the measured fastest strategy's: the best strategy's speed-up
    /// over ZeRO-3 (null without a GGG run).</summary>
    public double? GggOverBest { get; init; }

    /// <summary>
    /// With several rounds, the pairs of strategies every round measured in the same order (the pairs the measurement
    /// itself resolves), and how many of them the prediction orders the same way (a predicted tie counts as not
    /// ordered).
    /// Spearman weighs every pair alike, including pairs whose order changes from round to round; this counts only the
    /// pairs a user could check. Null with one round; pairs with a time that is not finite are left out.
    /// </summary>
    public ResolvedPairs? Pairs { get; init; }

    internal static Ranking Of(string launcher, int accumulation, IReadOnlyList<BenchmarkRow> rows)
    {
        var measured = rows.OrderBy(r => r.StepSeconds).Select(r => r.Strategy).ToList();
        var predicted = rows.OrderBy(r => r.PredictedStepSeconds).Select(r => r.Strategy).ToList();
        var n = rows.Count;
        var spearman = n < 2 ? 1 : SpearmanRho([.. rows.Select(r => r.StepSeconds)],
            [.. rows.Select(r => r.PredictedStepSeconds)]);
        var tau = n < 2 ? 1 : KendallTauB([.. rows.Select(r => r.StepSeconds)],
            [.. rows.Select(r => r.PredictedStepSeconds)]);
        var best = rows.MinBy(r => r.StepSeconds)!.StepSeconds;
        var recommended = rows.MinBy(r => r.PredictedStepSeconds)!;
        return new Ranking(launcher, accumulation, measured, predicted, spearman, tau,
            rows.Average(r => Math.Abs(r.StepTimeError)))
        {
            RoundsAgreement = AgreementOfRounds(rows),
            RecommendedOverBest = recommended.StepSeconds / best,
            GggOverBest = rows.FirstOrDefault(r => r.Strategy == "GGG") is { } ggg ? ggg.StepSeconds / best : null,
            Pairs = PairsResolvedByRounds(rows),
        };
    }

    /// <summary>The pairs every round ordered alike, and how many of them the prediction orders the same way (null with
    /// fewer than two rounds).</summary>
    internal static ResolvedPairs? PairsResolvedByRounds(IReadOnlyList<BenchmarkRow> rows)
    {
        var rounds = rows.Count == 0 ? 0 : rows.Min(r => r.RoundStepSeconds.Count);
        if (rounds < 2) return null;
        int resolved = 0, agreeing = 0;
        for (var i = 0; i < rows.Count; i++)
            for (var j = i + 1; j < rows.Count; j++)
            {
                var differences = Enumerable.Range(0,
                    rounds).Select(k => rows[i].RoundStepSeconds[k] - rows[j].RoundStepSeconds[k])
                    .Append(rows[i].PredictedStepSeconds - rows[j].PredictedStepSeconds).ToList();
                if (!differences.All(double.IsFinite)) continue;   // a failed measurement or prediction orders nothing
                var signs = differences.Take(rounds).Select(Math.Sign).Distinct().ToList();
                if (signs is not [var sign] || sign == 0) continue;
                resolved++;
                if (!Tied(rows[i].PredictedStepSeconds,
                    rows[j].PredictedStepSeconds)
                        && Math.Sign(rows[i].PredictedStepSeconds - rows[j].PredictedStepSeconds) == sign) agreeing++;
            }
        return new ResolvedPairs(rows.Count * (rows.Count - 1) / 2, resolved, agreeing);
    }

    /// <summary>
    /// The mean Spearman between every two rounds' measured step times (null with one round): how well two measurements
    /// of the same runs agree. Near 0, the strategies differ less than the machine's noise, and a prediction's
    /// agreement
    /// with the measurements says little either way (a perfect prediction would agree with one round at about the
    /// square
    /// root of this, and better with the median of several).
    /// </summary>
    internal static double? AgreementOfRounds(IReadOnlyList<BenchmarkRow> rows)
    {
        var rounds = rows.Min(r => r.RoundStepSeconds.Count);
        if (rounds < 2 || rows.Count < 2) return null;
        var pairs = new List<double>();
        for (var i = 0; i < rounds; i++)
            for (var j = i + 1; j < rounds; j++)
                pairs.Add(SpearmanRho([.. rows.Select(r => r.RoundStepSeconds[i])],
                    [.. rows.Select(r => r.RoundStepSeconds[j])]));
        return pairs.Average();
    }

    /// <summary>Kendall's tau-b: (concordant − discordant) / √(pairs untied in x · pairs untied in y), ties as in <see
    /// cref="SpearmanRho"/>; 0 without spread.</summary>
    internal static double KendallTauB(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        long concordant = 0, discordant = 0, untiedX = 0, untiedY = 0;
        for (var i = 0; i < x.Count; i++)
            for (var j = i + 1; j < x.Count; j++)
            {
                bool tx = Tied(x[i], x[j]), ty = Tied(y[i], y[j]);
                if (!tx) untiedX++;
                if (!ty) untiedY++;
                if (tx || ty) continue;
                if (Math.Sign(x[i] - x[j]) == Math.Sign(y[i] - y[j])) concordant++;
                else discordant++;
            }
        return untiedX == 0 || untiedY == 0 ? 0 : (concordant - discordant) / Math.Sqrt((double)untiedX * untiedY);
    }

    private static bool Tied(double a, double b) => Math.Abs(a - b) <= 1e-9 * Math.Max(Math.Abs(a), 1e-300);

    /// <summary>
    /// Spearman's rho with ties: the Pearson correlation of fractional ranks (tied values share their mean rank;
    /// values within a relative 1e-9 are ties, so strategies the model predicts equal are not ordered by rounding).
    /// 0 when either side has no spread (every value tied).
    /// </summary>
    internal static double SpearmanRho(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double[] Ranks(IReadOnlyList<double> v)
        {
            var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
            var ranks = new double[v.Count];
            for (var start = 0; start < order.Length;)
            {
                var end = start + 1;
                while (end < order.Length && Tied(v[order[end]], v[order[start]])) end++;
                for (var k = start; k < end; k++) ranks[order[k]] = (start + end - 1) / 2.0;
                start = end;
            }
            return ranks;
        }
        var (a, b) = (Ranks(x), Ranks(y));
        double ma = a.Average(), mb = b.Average();
        double cov = 0, va = 0, vb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            cov += (a[i] - ma) * (b[i] - mb);
            va += (a[i] - ma) * (a[i] - ma);
            vb += (b[i] - mb) * (b[i] - mb);
        }
        return va == 0 || vb == 0 ? 0 : cov / Math.Sqrt(va * vb);
    }
}

/// <summary>Pairs of strategies the measurement resolves (every round ordered them alike) and how many the prediction
/// orders the same way.</summary>
/// <param name="Total">Every pair of strategies.</param>
/// <param name="Resolved">Pairs every round measured in the same order.</param>
/// <param name="Agreeing">Resolved pairs the prediction orders the same way (a predicted tie does not count).</param>
internal sealed record ResolvedPairs(int Total, int Resolved, int Agreeing)
{
    /// <summary><see cref="Agreeing"/> / <see cref="Resolved"/>; null when the measurement resolves no pair.</summary>
    public double? Fraction => Resolved == 0 ? null : (double)Agreeing / Resolved;
}
