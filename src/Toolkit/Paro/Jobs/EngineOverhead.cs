using Toolkit.Comm;
using Toolkit.Data;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// What a DDP (NNN) step costs without the engine around it, on in-process ranks: A forward+backward passes of the same
/// micro-batches on a plain module, one all-reduce of a gradient-sized buffer by the same hierarchical decomposition
/// the engine uses (intra reduce-scatter, inter all-reduce, intra all-gather), and one AdamW update, each timed alone;
/// the three in one span, a plain DDP step without the engine; and the engine's own NNN step on the same micro-batches.
/// They run in the same repetitions, the plain step and the engine's alternating which goes first, so both see the same
/// machine (2 shared cores drift by 10-30 % between runs). Every phase is timed from a barrier to a barrier after it:
/// co-located ranks contend for the cores and finish at different times, and no data-parallel step can end before its
/// slowest rank's backward, so that wait is compute, not engine. The engine's step over the plain step is the engine's
/// own overhead (flattening gradients, attaching and releasing parameters, slicing); the parts timed alone show where a
/// step's time goes (their sum overstates a step a little: each waits for its own slowest rank).
/// </summary>
internal static class EngineOverhead
{
    /// <summary>Times the parts and the engine's step for <paramref name="job"/> (its model, micro-batch, ranks,
    /// groups, precision and accumulation); medians over the job's steps after a warm-up.</summary>
    public static EngineBaseline Measure(ParoTrainOptions job)
    {
        job = job with { Sharding = job.Sharding with { Strategy = "NNN", Layerwise = false, Recompute = false,
            NoPrefetch = false } };
        job.Validate();
        var (ranks, groupSize, a) = (job.Launch.Ranks, job.Launch.GroupSize, job.Sharding.Accumulation);
        Runtime.Devices.ConfigureCpuThreads(ranks);
        var source = job.Model.Resolve();
        var length = job.Data.LengthFor(source.Config);
        var dtype = job.Plan.ComputeType;
        var repeats = Math.Max(1, job.Steps - 1);
        var times = InProcessCluster.Run(ranks, groupSize, comm =>
        {
            comm.Algorithm = job.Sharding.Collectives;
            using var model = source.Load(job.Seed, dtype);
            using var engineModel = source.Load(job.Seed);
            using var trainer = ShardedTrainer.Create(engineModel, job.Plan, comm, job.Optimizer);
            var data = job.Data.Path is null
                ? TokenDataset.SyntheticStories(source.Tokenizer) : TokenDataset.FromTextFile(job.Data.Path,
                    source.Tokenizer);
            var elements = model.parameters().Sum(p => p.numel());
            using var groups = new ParoGroups(comm, groupSize, elements);
            using var gradient = zeros(groups.Padded, dtype: dtype);
            using var optimizer = new FlatAdamW(groups.Padded, CPU, job.Optimizer);
            // libtorch's sequence, for comparison
            using var unfusedOptimizer = new FlatAdamW(groups.Padded, CPU, job.Optimizer) { ForceUnfused = true };
            using var master = zeros(groups.Padded);
            using var average = zeros(groups.Padded);
            var compute = new List<double>();
            var allReduce = new List<double>();
            var adam = new List<double>();
            var unfusedAdam = new List<double>();
            var plain = new List<double>();
            var engine = new List<double>();
            double Timed(Action phase) => CostModelCalibration.SlowestRankSeconds(comm, phase);
            void ForwardBackward(int step)
            {
                model.zero_grad();
                for (var micro = 0; micro < a; micro++)
                {
                    using var scope = NewDisposeScope();
                    var (x, y) = data.Batch(job.Seed, step, micro * comm.Size + comm.Rank, job.Data.MicroBatch, length);
                    model.Loss(x, y).backward();
                }
            }
            double Engine(int step) => Timed(() => trainer.Step([.. Enumerable.Range(0,
                a).Select(micro => (Func<nn.Module, Tensor>)(m =>
            {
                var (x, y) = data.Batch(job.Seed, step, micro * comm.Size + comm.Rank, job.Data.MicroBatch, length);
                return ((CausalLanguageModel)m).Loss(x, y);
            }))]));
            double Plain(int step) => Timed(() =>
            {
                ForwardBackward(step);
                groups.AllReduce(gradient);
                optimizer.Update(master, average);
            });
            for (var step = 0; step <= repeats; step++)                  // step 0 warms up
            {
                var c = Timed(() => ForwardBackward(step));
                var r = Timed(() => groups.AllReduce(gradient));
                var o = Timed(() => optimizer.Update(master, average));
                var u = Timed(() => unfusedOptimizer.Update(master, average));
                double p, e;
                if (step % 2 == 0) (p, e) = (Plain(step), Engine(step));
                else (e, p) = (Engine(step), Plain(step));
                if (step == 0) continue;
                compute.Add(c);
                allReduce.Add(r);
                adam.Add(o);
                unfusedAdam.Add(u);
                plain.Add(p);
                engine.Add(e);
            }
            return new EngineBaseline(Runtime.Statistics.Median(compute), Runtime.Statistics.Median(allReduce),
                Runtime.Statistics.Median(adam),
                Runtime.Statistics.Median(plain), Runtime.Statistics.Median(engine),
                    Runtime.Statistics.Median(unfusedAdam));
        });
        // phases end at a barrier: every rank timed the same spans
        return times[0];
    }
}

/// <summary>The parts of a DDP step timed alone, and the engine's step beside them (seconds, medians, each phase up to
/// its slowest rank).</summary>
/// <param name="ForwardBackwardSeconds">A forward+backward passes of a plain module.</param>
/// <param name="AllReduceSeconds">One all-reduce of the (padded) gradient, the engine's decomposition and
/// algorithm.</param>
/// <param name="OptimizerSeconds">One AdamW update of every parameter (the fused pass the engine runs on the
/// CPU).</param>
/// <param name="PlainStepSeconds">The three in one span: a DDP step without the engine.</param>
/// <param name="EngineStepSeconds">The engine's NNN step on the same micro-batches, timed in the same
/// repetitions.</param>
/// <param name="UnfusedOptimizerSeconds">The same AdamW update as libtorch's unfused sequence of eight passes, for
/// comparison.</param>
internal sealed record EngineBaseline(double ForwardBackwardSeconds, double AllReduceSeconds, double OptimizerSeconds,
    double PlainStepSeconds, double EngineStepSeconds,
    double UnfusedOptimizerSeconds);

/// <summary>The engine's overhead for DDP (NNN) at one accumulation.</summary>
/// <param name="Accumulation">A.</param>
/// <param name="StepSeconds">The engine's NNN step (median), timed beside the parts.</param>
/// <param name="Baseline">The parts timed alone.</param>
/// <param name="OverComputeAndAllReduce">Step / (forward+backward + all-reduce, timed alone): AdamW counts as overhead
/// here.</param>
/// <param name="OverPlainStep">Step / the plain DDP step (forward+backward, all-reduce and AdamW without the engine):
/// the engine's own overhead.</param>
internal sealed record EngineOverheadRow(int Accumulation, double StepSeconds, EngineBaseline Baseline,
    double OverComputeAndAllReduce, double OverPlainStep)
{
    internal static EngineOverheadRow Of(int accumulation, EngineBaseline b) =>
        new(accumulation, b.EngineStepSeconds, b,
            b.EngineStepSeconds / (b.ForwardBackwardSeconds + b.AllReduceSeconds),
                b.EngineStepSeconds / b.PlainStepSeconds);
}
