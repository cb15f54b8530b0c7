using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// Fits the cost model's machine constants with short probes on the job's own ranks: ring all-reduce
/// bandwidth and latency inside groups, and across groups with every group's ring running at once (as the
/// engine's inter-group collectives do), forward+backward FLOP/s of the model with every rank busy at once,
/// and the optimizer's memory bandwidth.
/// </summary>
/// <remarks>
/// <see cref="Measure"/> probes in-process ranks (threads of this process); <see cref="MeasureAsync"/> probes
/// wherever the options' launcher puts the ranks (MPI processes, the emulated cluster, a Slurm job), so links,
/// co-located ranks' CPU contention and the transport's own costs are measured where the job will run.
/// </remarks>
public static class CostModelCalibration
{
    /// <summary>Measures a <see cref="ClusterSpec"/> for the job <paramref name="options"/> describes (its ranks,
    /// groups, model and micro-batch) on in-process ranks.</summary>
    public static ClusterSpec Measure(ParoTrainOptions options)
    {
        options.Validate();
        var (ranks, groupSize) = (options.Launch.Ranks, options.Launch.GroupSize);
        Runtime.Devices.ConfigureCpuThreads(ranks);
        var probes = InProcessCluster.Run(ranks, groupSize, comm => Probe(comm, options));
        return Combine(probes, $"this machine, {ranks} in-process ranks in groups of {groupSize}", ranks, groupSize);
    }

    /// <summary>Measures a <see cref="ClusterSpec"/> on the ranks the options' launcher starts (a <c>paro-calibrate</c>
    /// run folder is written).</summary>
    public static Task<ClusterSpec> MeasureAsync(ParoTrainOptions options,
        CancellationToken cancellationToken = default) =>
        Jobs.JobHost.RunAsync(new CalibrationJob(), options, null, cancellationToken);

    /// <summary>One rank's probes; collective over <paramref name="comm"/>.</summary>
    internal static CalibrationProbe Probe(Communicator comm, ParoTrainOptions options)
    {
        var groupSize = options.Launch.GroupSize;
        var source = options.Model.Resolve();
        var config = source.Config;
        var bytes = options.Sharding.Precision == ParoPrecision.Bf16 ? 2 : 4;
        // Each link is probed with the messages the engine puts on it: a group's ring carries whole buffers of the
        // model's size, an inter-group ring the 1/m slice of one. A shaped link's efficiency depends on the transfer's
        // size (a token bucket passes a burst at once, TCP's window grows over a long one), so a probe of another
        // size measures another bandwidth.
        var message = Math.Max(1 << 16, config.ParameterCount * bytes);
        using var intra = comm.SplitWithinGroups(groupSize);
        using var inter = comm.SplitAcrossGroups(groupSize);
        var (intraBandwidth, intraLatency) = BandwidthProbe.RingLink(intra, message);
        var (interBandwidth, interLatency) = BandwidthProbe.RingLink(inter, Math.Max(1 << 16, message / groupSize));
        var flops = Compute(comm, options, source);
        var memoryBandwidth = Optimizer(comm, config.ParameterCount);
        return new CalibrationProbe(intraBandwidth, intraLatency, interBandwidth, interLatency, flops, memoryBandwidth);
    }

    /// <summary>
    /// The median over <paramref name="repeats"/> of <paramref name="work"/> timed from a barrier to a barrier after
    /// it,
    /// after one untimed run: co-located ranks share the cores and finish at different times, and a synchronous step
    /// waits for the slowest, so that is the time the cost model's terms must predict.
    /// </summary>
    private static double SlowestRankSeconds(Communicator comm, Action work, int repeats)
    {
        work();
        return Runtime.Statistics.Median(Enumerable.Range(0, repeats).Select(_ => SlowestRankSeconds(comm,
            work)).ToList());
    }

    /// <summary>Collective: seconds of <paramref name="work"/> from a barrier to a barrier after it, the same on every
    /// rank (the slowest rank's time).</summary>
    internal static double SlowestRankSeconds(Communicator comm, Action work)
    {
        comm.Barrier();
        var clock = Stopwatch.StartNew();
        work();
        comm.Barrier();
        return clock.Elapsed.TotalSeconds;
    }

    internal static ClusterSpec Combine(IReadOnlyList<CalibrationProbe> probes, string name, int ranks, int groupSize)
    {
        double Mean(Func<CalibrationProbe,
            double> f) => probes.Select(f).Where(v => v > 0 && double.IsFinite(v)).DefaultIfEmpty(1).Average();
        return new ClusterSpec(name, ranks, groupSize,
            DeviceMemoryBytes: 1e15, IntraBandwidth: Mean(p => p.IntraBandwidth),
                InterBandwidth: Mean(p => p.InterBandwidth),
            IntraLatency: Mean(p => p.IntraLatency), InterLatency: Mean(p => p.InterLatency),
                ComputeFlops: Mean(p => p.ComputeFlops), MemoryBandwidth: Mean(p => p.MemoryBandwidth));
    }

    /// <summary>
    /// FLOP/s of forward and backward ((4Ψ + 2Ψ')·tokens) while every rank computes at once, up to the slowest rank,
    /// with
    /// four micro-steps back to back per timed window (whatever the job's accumulation: the window's start and end are
    /// spread over several). Timing one micro-step per window measured 7.3 GFLOP/s on the emulated 2x2 (four ranks on
    /// two cores) against 10.3-10.6 this way, and with this and the inter-group probe's message size the mean step-time
    /// error there at 100 Mbit/s fell from 22-31 % to 5-14 %. A barrier after each of the four micro-steps measured no
    /// slowdown, so it is the window of one micro-step, not synchronisation, that lost the time.
    /// </summary>
    private static double Compute(Communicator comm, ParoTrainOptions o, ModelSource source)
    {
        var config = source.Config;
        var length = o.Data.LengthFor(config);
        using var model = source.Load(o.Seed, o.Plan.ComputeType);
        var data = TokenDataset.SyntheticStories(source.Tokenizer);
        var (x, y) = data.Batch(o.Seed, 0, comm.Rank, o.Data.MicroBatch, length);
        const int microSteps = 4;
        var seconds = SlowestRankSeconds(comm, () =>
        {
            for (var i = 0; i < microSteps; i++)
            {
                using var scope = NewDisposeScope();
                model.zero_grad();
                model.Loss(x, y).backward();
            }
        }, repeats: 3) / microSteps;
        return 6.0 * config.ParameterCount * o.Data.MicroBatch * length / seconds;
    }

    /// <summary>Bytes/s the AdamW step streams (fp32 parameters, gradient, two moments; read and written) while every
    /// rank updates at once, up to the slowest rank.</summary>
    private static double Optimizer(Communicator comm, long elements)
    {
        using var optimizer = new FlatAdamW(elements, CPU, new AdamWOptions());
        using var parameters = zeros(elements);
        using var gradient = ones(elements);
        return elements * 16.0 * 2 / SlowestRankSeconds(comm, () => optimizer.Update(parameters, gradient), repeats: 5);
    }
}

/// <summary>One rank's calibration probes.</summary>
/// <param name="IntraBandwidth">Bytes/s one rank sends on its group's ring.</param>
/// <param name="IntraLatency">Seconds per intra-group ring step of a tiny message.</param>
/// <param name="InterBandwidth">Bytes/s one rank sends on its inter-group ring while every other ring runs too.</param>
/// <param name="InterLatency">Seconds per inter-group ring step of a tiny message.</param>
/// <param name="ComputeFlops">Forward+backward FLOP/s with every rank computing.</param>
/// <param name="MemoryBandwidth">Bytes/s of the AdamW update.</param>
internal sealed record CalibrationProbe(double IntraBandwidth, double IntraLatency, double InterBandwidth,
    double InterLatency, double ComputeFlops, double MemoryBandwidth);

/// <summary>The calibration probes as a job, so they run under any launcher (<see
/// cref="CostModelCalibration.MeasureAsync"/>).</summary>
internal sealed class CalibrationJob : Jobs.RankJob<ParoTrainOptions, CalibrationProbe, ClusterSpec>
{
    /// <inheritdoc/>
    public override string Kind => "paro-calibrate";

    /// <inheritdoc/>
    public override CalibrationProbe RunRank(Jobs.RankContext<ParoTrainOptions> context)
        => CostModelCalibration.Probe(context.Comm, context.Options);

    /// <inheritdoc/>
    public override ClusterSpec Finish(Jobs.JobRun<ParoTrainOptions> run, IReadOnlyList<CalibrationProbe> outcomes)
    {
        var launch = run.Options.Launch;
        var links = launch.Cluster is { NicsPerNode: > 1 } rails ? $"{rails.NicsPerNode} x " : "";
        var where = launch.Cluster is { } c ? $"emulated {c.Nodes}x{c.RanksPerNode}, {links}{c.InterBandwidth} links"
            : Options.OptionSpec.EnumName(typeof(Jobs.Launcher), launch.Launcher);
        return CostModelCalibration.Combine(outcomes, $"{where}: {launch.Ranks} ranks in groups of {launch.GroupSize}",
            launch.Ranks, launch.GroupSize);
    }
}
