using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// What a DDP (NNN) step costs without the engine around it, on in-process ranks: A forward+backward passes of the
/// same micro-batches on a plain module, one all-reduce of a gradient-sized buffer by the same hierarchical
/// decomposition the engine uses (intra reduce-scatter, inter all-reduce, intra all-gather), and one AdamW update,
/// each timed alone. <c>toolkit bench paro</c> sets the measured DDP step against their sum, so the engine's own
/// overhead (flattening gradients, attaching and releasing parameters, slicing) is visible.
/// </summary>
public static class EngineOverhead
{
    /// <summary>Times the parts for <paramref name="job"/> (its model, micro-batch, ranks, groups, precision and accumulation); the slowest rank's median over the job's steps after a warm-up.</summary>
    public static EngineBaseline Measure(ParoTrainOptions job)
    {
        job.Validate();
        var (ranks, groupSize, a) = (job.Launch.Ranks, job.Launch.GroupSize, job.Sharding.Accumulation);
        Runtime.Devices.ConfigureCpuThreads(ranks);
        var config = job.Model.Config;
        var dtype = job.Sharding.Precision == ParoPrecision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        var repeats = Math.Max(1, job.Steps - 1);
        var times = InProcessCluster.Run(ranks, groupSize, comm =>
        {
            comm.Algorithm = job.Sharding.Collectives;
            using var model = Gpt.Create(config, job.Seed);
            if (dtype == ScalarType.BFloat16) model.to(dtype);
            var data = job.Data.Path is null ? TokenDataset.SyntheticStories() : TokenDataset.FromTextFile(job.Data.Path);
            var elements = model.parameters().Sum(p => p.numel());
            using var groups = new ParoGroups(comm, groupSize, elements);
            using var gradient = zeros(groups.Padded, dtype: dtype);
            using var optimizer = new FlatAdamW(groups.Padded, CPU, job.Optimizer);
            using var master = zeros(groups.Padded);
            using var average = zeros(groups.Padded);
            var compute = new List<double>();
            var allReduce = new List<double>();
            var adam = new List<double>();
            for (var step = 0; step <= repeats; step++)                  // step 0 warms up
            {
                comm.Barrier();
                var clock = Stopwatch.StartNew();
                model.zero_grad();
                for (var micro = 0; micro < a; micro++)
                {
                    using var scope = NewDisposeScope();
                    var (x, y) = data.Batch(job.Seed, step, micro * comm.Size + comm.Rank, job.Data.MicroBatch, config.ContextLength);
                    model.Loss(x, y).backward();
                }
                var c = clock.Elapsed.TotalSeconds;
                comm.Barrier();
                clock.Restart();
                groups.AllReduce(gradient);
                var r = clock.Elapsed.TotalSeconds;
                comm.Barrier();
                clock.Restart();
                optimizer.Update(master, average);
                var o = clock.Elapsed.TotalSeconds;
                if (step == 0) continue;
                compute.Add(c);
                allReduce.Add(r);
                adam.Add(o);
            }
            return (Runtime.Statistics.Median(compute), Runtime.Statistics.Median(allReduce), Runtime.Statistics.Median(adam));
        });
        return new EngineBaseline(times.Max(t => t.Item1), times.Max(t => t.Item2), times.Max(t => t.Item3));
    }
}

/// <summary>The parts of a DDP step timed alone (seconds, slowest rank's median).</summary>
/// <param name="ForwardBackwardSeconds">A forward+backward passes of a plain module.</param>
/// <param name="AllReduceSeconds">One all-reduce of the (padded) gradient, the engine's decomposition and algorithm.</param>
/// <param name="OptimizerSeconds">One AdamW update of every parameter.</param>
public sealed record EngineBaseline(double ForwardBackwardSeconds, double AllReduceSeconds, double OptimizerSeconds);

/// <summary>The engine's overhead for DDP (NNN) at one accumulation.</summary>
/// <param name="Accumulation">A.</param>
/// <param name="StepSeconds">The engine's measured NNN step (median).</param>
/// <param name="Baseline">The parts timed alone.</param>
/// <param name="OverComputeAndAllReduce">Step / (forward+backward + all-reduce): the engine's overhead, AdamW included in it.</param>
/// <param name="OverComputeAllReduceAndOptimizer">Step / (forward+backward + all-reduce + AdamW).</param>
public sealed record EngineOverheadRow(int Accumulation, double StepSeconds, EngineBaseline Baseline, double OverComputeAndAllReduce, double OverComputeAllReduceAndOptimizer)
{
    internal static EngineOverheadRow Of(int accumulation, double step, EngineBaseline b) =>
        new(accumulation, step, b, step / (b.ForwardBackwardSeconds + b.AllReduceSeconds), step / (b.ForwardBackwardSeconds + b.AllReduceSeconds + b.OptimizerSeconds));
}
