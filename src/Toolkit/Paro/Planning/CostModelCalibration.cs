using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// Fits the cost model's machine constants to this machine with short probes on in-process ranks:
/// ring all-reduce bandwidth and latency inside and across groups, forward+backward FLOP/s of the
/// model with every rank busy at once, and the optimizer's memory bandwidth.
/// </summary>
public static class CostModelCalibration
{
    /// <summary>Measures a <see cref="ClusterSpec"/> for the job <paramref name="options"/> describes (its ranks, groups, model and micro-batch).</summary>
    public static ClusterSpec Measure(ParoTrainOptions options)
    {
        options.Validate();
        var (ranks, groupSize) = (options.Launch.Ranks, options.Launch.GroupSize);
        Runtime.Devices.ConfigureCpuThreads(ranks);
        var config = options.Model.Config;
        var bytes = options.Sharding.Precision == ParoPrecision.Bf16 ? 2 : 4;
        var message = Math.Max(1 << 16, config.ParameterCount * bytes);
        var probes = InProcessCluster.Run(ranks, groupSize, comm =>
        {
            using var intra = comm.SplitWithinGroups(groupSize);
            using var inter = comm.SplitAcrossGroups(groupSize);
            var (intraBandwidth, intraLatency) = BandwidthProbe.RingLink(intra, message);
            var (interBandwidth, interLatency) = BandwidthProbe.RingLink(inter, message);
            comm.Barrier();
            var flops = Compute(options, config);
            comm.Barrier();
            var memoryBandwidth = Optimizer(config.ParameterCount);
            return (intraBandwidth, intraLatency, interBandwidth, interLatency, flops, memoryBandwidth);
        });
        double Mean(Func<(double, double, double, double, double, double), double> f) => probes.Select(f).Where(v => v > 0 && double.IsFinite(v)).DefaultIfEmpty(1).Average();
        return new ClusterSpec($"this machine, {ranks} in-process ranks in groups of {groupSize}", ranks, groupSize,
            DeviceMemoryBytes: 1e15, IntraBandwidth: Mean(p => p.Item1), InterBandwidth: Mean(p => p.Item3),
            IntraLatency: Mean(p => p.Item2), InterLatency: Mean(p => p.Item4), ComputeFlops: Mean(p => p.Item5), MemoryBandwidth: Mean(p => p.Item6));
    }

    /// <summary>FLOP/s of forward and backward ((4Ψ + 2Ψ')·tokens) while every rank computes at once.</summary>
    private static double Compute(ParoTrainOptions o, GptConfig config)
    {
        using var model = new Gpt(config);
        if (o.Sharding.Precision == ParoPrecision.Bf16) model.to(ScalarType.BFloat16);
        var data = TokenDataset.SyntheticStories();
        var (x, y) = data.Batch(o.Seed, 0, 0, o.Data.MicroBatch, config.ContextLength);
        using (NewDisposeScope()) model.Loss(x, y).backward();   // warm-up
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (var i = 0; i < repeats; i++)
        {
            using var scope = NewDisposeScope();
            model.zero_grad();
            model.Loss(x, y).backward();
        }
        return 6.0 * config.ParameterCount * o.Data.MicroBatch * config.ContextLength / (clock.Elapsed.TotalSeconds / repeats);
    }

    /// <summary>Bytes/s the AdamW step streams (fp32 parameters, gradient, two moments; read and written).</summary>
    private static double Optimizer(long elements)
    {
        using var optimizer = new FlatAdamW(elements, CPU, new AdamWOptions());
        using var parameters = zeros(elements);
        using var gradient = ones(elements);
        optimizer.Update(parameters, gradient);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 3; i++) optimizer.Update(parameters, gradient);
        return elements * 16.0 * 2 / (clock.Elapsed.TotalSeconds / 3);
    }
}
