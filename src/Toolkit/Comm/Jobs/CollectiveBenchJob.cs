using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Options;
using Toolkit.Reporting;
using Toolkit.Runtime;

namespace Toolkit.Comm;

/// <summary>Options of <c>toolkit bench collectives</c>.</summary>
internal sealed record CollectiveBenchOptions : IJobOptions
{
    /// <summary>Where the ranks run: MPI processes by default (in-process ranks share one address space and say little
    /// about links); with <c>--emulate GxM</c> on the emulated cluster.</summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = new() { Launcher = Launcher.Mpi };

    /// <summary>Message sizes. Default 1MiB,4MiB,16MiB,64MiB,256MiB.</summary>
    [Option("Message sizes, comma-separated (1MiB,64MiB).")]
    public string Sizes { get; init; } = "1MiB,4MiB,16MiB,64MiB,256MiB";

    /// <summary>Algorithms to time. Default all.</summary>
    [Option("Algorithms to time, comma-separated: native, ring, hierarchical, ho-ring.")]
    public string Algorithms { get; init; } = string.Join(',', CollectiveAlgorithms.Names);

    /// <summary>Whether HO-Ring pipelines its phases. Default auto (see <see cref="HoRingPipeline"/>).</summary>
    [Option("HO-Ring's pipeline: auto (only where it pays: in-process ranks with a core per stage thread), on " +
        "(phases overlap on threads, chunks of 1 MiB) or off (phases in turn).")]
    public HoRingPipeline Pipeline { get; init; } = HoRingPipeline.Auto;

    /// <summary>Timed calls per size. Default 3.</summary>
    [Option("Timed calls per algorithm and size (after one warm-up call).")]
    public int Repeats { get; init; } = 3;

    /// <summary>The parsed sizes in bytes.</summary>
    [JsonIgnore] public IReadOnlyList<long> SizeList => Units.ParseList(Sizes, Units.ParseBytes);

    /// <summary>The parsed algorithms.</summary>
    [JsonIgnore] public IReadOnlyList<CollectiveAlgorithm> AlgorithmList => Units.ParseList(Algorithms,
        CollectiveAlgorithms.Parse);

    /// <inheritdoc/>
    public void Check()
    {
        Launch.Validate();
        if (SizeList.Any(s => s < 4)) throw new ArgumentOutOfRangeException(nameof(Sizes), Sizes,
            "every size must be at least 4 bytes");
        _ = AlgorithmList;
        if (Repeats < 1) throw new ArgumentOutOfRangeException(nameof(Repeats), Repeats, "must be at least 1");
    }
}

/// <summary>
/// Times all-reduce of each algorithm at each size on the job's ranks (MPI processes on this host, or
/// the emulated cluster) and sets the measurements next to the alpha-beta simulator's prediction for
/// the same topology.
/// </summary>
internal sealed class CollectiveBenchJob : RankJob<CollectiveBenchOptions, MeasuredCollectives, CollectiveBenchReport>
{
    /// <inheritdoc/>
    public override string Kind => "bench-collectives";

    /// <inheritdoc/>
    public override bool UsesTorch => false;

    /// <summary>Runs the benchmark.</summary>
    /// <param name="options">What to measure and where.</param>
    /// <param name="cancellationToken">Stops it.</param>
    /// <param name="progress">Receives the job's state changes, if it implements <see cref="IProgress{JobStatus}"/>
    /// (the benchmark records no per-step metrics).</param>
    public static Task<CollectiveBenchReport> RunAsync(CollectiveBenchOptions options,
        CancellationToken cancellationToken = default, IProgress<Runs.MetricPoint>? progress = null) =>
        JobHost.RunAsync(new CollectiveBenchJob(), options, progress, cancellationToken);

    /// <inheritdoc/>
    public override MeasuredCollectives RunRank(RankContext<CollectiveBenchOptions> context) =>
        CollectiveBenchmark.Run(context.Comm, context.Options.SizeList, context.Options.AlgorithmList,
            context.Options.Repeats, context.Options.Pipeline);

    /// <inheritdoc/>
    public override CollectiveBenchReport Finish(JobRun<CollectiveBenchOptions> run,
        IReadOnlyList<MeasuredCollectives> outcomes)
    {
        var launch = run.Options.Launch;
        var measured = outcomes[0];
        var emulated = launch.Cluster is not null;
        var latencyEmulated = emulated && !run.LauncherOutput.Contains("NOT emulated", StringComparison.Ordinal);
        var topology = new Topology(launch.Ranks / launch.GroupSize, launch.GroupSize, measured.IntraBandwidth,
            emulated ? Units.ParseBitRate(launch.InterBandwidth) : measured.IntraBandwidth, measured.IntraLatency,
            latencyEmulated ? Units.ParseDuration(launch.InterLatency) : measured.IntraLatency,
                NicsPerNode: emulated ? launch.NicsPerNode : 1);
        var rows = measured.Results.Select(r =>
        {
            var algorithm = CollectiveAlgorithms.Parse(r.Algorithm);
            // Predict what the engine ran: HO-Ring's phases are timed only when it ran unpipelined (also below
            // one chunk).
            var unpipelined = algorithm == CollectiveAlgorithm.HoRing
                && (!measured.HoRingPipelined || r.PhaseSeconds.Count > 0);
            var predicted = unpipelined
                ? CollectiveSimulator.HoRingUnpipelinedSeconds(topology, r.Bytes)
                : CollectiveSimulator.AllReduceSeconds(algorithm, topology, r.Bytes);
            return new BenchRow(r.Algorithm, r.Bytes, r.Seconds, r.BusBandwidth, r.IntraBytesPerCall,
                r.InterBytesPerCall, predicted, (predicted - r.Seconds) / r.Seconds,
                r.PhaseSeconds, r.UserCpuSeconds, r.SystemCpuSeconds, r.CoresBusy);
        }).ToList();
        var speedups = rows.GroupBy(r => r.Bytes).Select(g =>
        {
            double T(string a) => g.FirstOrDefault(r => r.Algorithm == a)?.Seconds ?? double.NaN;
            return new Speedup(g.Key, T("ring") / T("ho-ring"), T("native") / T("ho-ring"),
                T("hierarchical") / T("ho-ring"));
        }).ToList();
        var links = run.LauncherOutput.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l,
            @"^node\d+ eth\d+ ")).ToList();
        return new CollectiveBenchReport(
            new BenchTopology(topology.Nodes, topology.RanksPerNode, emulated,
                emulated ? launch.InterBandwidth : "host", emulated ? launch.InterLatency : "host", latencyEmulated,
                measured.IntraBandwidth, measured.IntraLatency, links, measured.HoRingPipelined, measured.Cores,
                    topology.NicsPerNode),
            rows, speedups, run.Path);
    }
}

/// <summary>The JSON of <c>toolkit bench collectives</c>.</summary>
/// <param name="Topology">What ran where.</param>
/// <param name="Results">One row per algorithm and size.</param>
/// <param name="Speedups">HO-Ring against the others, per size.</param>
/// <param name="RunPath">The run folder.</param>
internal sealed record CollectiveBenchReport(BenchTopology Topology, IReadOnlyList<BenchRow> Results,
    IReadOnlyList<Speedup> Speedups, string RunPath) : IFacts
{
    /// <inheritdoc/>
    [JsonIgnore] public string Title
        => $"All-reduce on {Topology.Nodes} x {Topology.RanksPerNode} ranks{(Topology.Emulated ? $" " +
            $"(emulated, {(Topology.NicsPerNode > 1 ? $"{Topology.NicsPerNode} x " : "")}{Topology.InterBandwidth} " +
                $"links per node)" : "")}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts() =>
    [
        .. Results.Select(r => ($"{r.Algorithm} {Units.FormatBytes(r.Bytes)}",
            string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{r.Seconds * 1e3:F1} ms, {r.BusBandwidth / 1e9:F3} GB/s; predicted {r.PredictedSeconds * 1e3:F1} " +
                    $"ms ({r.PredictionError:+0%;-0%}); CPU {r.CoresBusy:F1} cores " +
                        $"busy, {r.SystemCpuSeconds / Math.Max(1e-12, r.UserCpuSeconds + r.SystemCpuSeconds):P0} " +
                            $"system") +
            (r.PhaseSeconds.Count == 0 ? "" : "; phases " + string.Join(", ",
                r.PhaseSeconds.Select(p
                    => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $"{p.Key.Replace("ho-ring ", "")} {p.Value * 1e3:F1} ms")))))),
        ("HO-Ring pipeline",
            Topology.HoRingPipelined
                ? "on (phases overlap on threads)" : $"off (phases in turn; {Topology.Cores} cores)"),
        .. Speedups.Where(s => double.IsFinite(s.HoRingOverRing) || double.IsFinite(s.HoRingOverNative)).Select(s
            => ($"HO-Ring at {Units.FormatBytes(s.Bytes)}",
            string.Join(", ", new[] { (s.HoRingOverRing, "ring"), (s.HoRingOverNative,
                "native") }.Where(x => double.IsFinite(x.Item1)).Select(x
                    => System.FormattableString.Invariant($"{x.Item1:F2}x {x.Item2}"))))),
        ("run folder", RunPath),
    ];
}

/// <summary>The benchmarked topology.</summary>
/// <param name="Nodes">Groups (nodes).</param>
/// <param name="RanksPerNode">Ranks per node.</param>
/// <param name="Emulated">True on the emulated cluster.</param>
/// <param name="InterBandwidth">Emulated link rate, or <c>host</c>.</param>
/// <param name="InterLatency">Emulated link latency, or <c>host</c>.</param>
/// <param name="LatencyEmulated">False where the kernel has no netem (the latency was not applied).</param>
/// <param name="MeasuredIntraBandwidth">Measured per-rank intra-node bandwidth (bytes/s).</param>
/// <param name="MeasuredIntraLatency">Measured intra-node latency (s).</param>
/// <param name="LinkCounters">The emulated links' counters as the cluster script printed them.</param>
/// <param name="HoRingPipelined">Whether HO-Ring's all-reduce overlapped its phases (<see cref="HoRingPipeline"/> says
/// when it does).</param>
/// <param name="Cores">Processor count of the machine rank 0 ran on (every emulated node shares this machine's
/// cores).</param>
/// <param name="NicsPerNode">Shaped links per emulated node (multi-rail); 1 on one host.</param>
internal sealed record BenchTopology(int Nodes, int RanksPerNode, bool Emulated, string InterBandwidth,
    string InterLatency, bool LatencyEmulated,
    double MeasuredIntraBandwidth, double MeasuredIntraLatency, IReadOnlyList<string> LinkCounters,
        bool HoRingPipelined, int Cores, int NicsPerNode);

/// <summary>One measured algorithm and size.</summary>
/// <param name="Algorithm">native, ring, hierarchical or ho-ring.</param>
/// <param name="Bytes">Message size.</param>
/// <param name="Seconds">Slowest rank's mean time per call.</param>
/// <param name="BusBandwidth">Bytes/s, NCCL-tests convention.</param>
/// <param name="IntraBytesPerCall">Bytes rank 0 sent inside its node per call.</param>
/// <param name="InterBytesPerCall">Bytes rank 0 sent to other nodes per call.</param>
/// <param name="PredictedSeconds">The simulator's time.</param>
/// <param name="PredictionError">(predicted − measured) / measured.</param>
/// <param name="PhaseSeconds">Per call, the slowest rank's wall time in each phase (unpipelined HO-Ring).</param>
/// <param name="UserCpuSeconds">Per call, user CPU time of all the job's processes.</param>
/// <param name="SystemCpuSeconds">Per call, system CPU time of all the job's processes.</param>
/// <param name="CoresBusy">(user + system CPU) / wall time.</param>
internal sealed record BenchRow(string Algorithm, long Bytes, double Seconds, double BusBandwidth,
    long IntraBytesPerCall, long InterBytesPerCall,
    double PredictedSeconds, double PredictionError, IReadOnlyDictionary<string, double> PhaseSeconds,
        double UserCpuSeconds, double SystemCpuSeconds, double CoresBusy);

/// <summary>HO-Ring's speed-up at one size.</summary>
/// <param name="Bytes">Message size.</param>
/// <param name="HoRingOverRing">Ring time / HO-Ring time.</param>
/// <param name="HoRingOverNative">MPI native time / HO-Ring time.</param>
/// <param name="HoRingOverHierarchical">Leader-based hierarchical time / HO-Ring time.</param>
internal sealed record Speedup(long Bytes, double HoRingOverRing, double HoRingOverNative,
    double HoRingOverHierarchical);
