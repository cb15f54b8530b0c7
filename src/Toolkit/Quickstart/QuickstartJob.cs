using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Jobs;
using Toolkit.Reporting;
using Toolkit.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Quickstart;

/// <summary>
/// The smallest end-to-end job of the toolkit: n ranks (in-process by default) train one regression network with data
/// parallelism (each rank its own samples; gradients all-reduced with the ring, then averaged), recording loss, traffic
/// and step time to a run folder and an offline HTML report.
/// </summary>
public sealed class QuickstartJob : RankJob<QuickstartOptions, QuickstartJob.RankOutcome, QuickstartResult>,
    IRestartableJob<QuickstartOptions>
{
    private const int Inputs = 16;

    /// <inheritdoc/>
    public override string Kind => "quickstart";

    /// <summary>Runs the job. <paramref name="progress"/> receives every metric as it is recorded.</summary>
    public static Task<QuickstartResult> RunAsync(QuickstartOptions options, IProgress<MetricPoint>? progress = null,
        CancellationToken cancellationToken = default) =>
        JobHost.RunAsync(new QuickstartJob(), options, progress, cancellationToken);

    /// <inheritdoc/>
    public override RankOutcome RunRank(RankContext<QuickstartOptions> context)
    {
        var (comm, o) = (context.Comm, context.Options);
        using var data = new Generator((ulong)(o.Seed * 1000 + comm.Rank));
        using var teacher = new Generator((ulong)o.Seed);
        using var truth = randn([Inputs, 1], generator: teacher);                      // [I, 1] the function to learn
        using var scale = Math.Sqrt(Inputs).ToScalar();                                // held for the calls (TK0001)
        using var model = nn.Sequential(nn.Linear(Inputs, o.Hidden), nn.Tanh(), nn.Linear(o.Hidden, 1));
        using (no_grad())
        using (var weights = new Generator((ulong)o.Seed + 7919))
            foreach (var layer in model.modules().OfType<TorchSharp.Modules.Linear>())
            {
                // PyTorch's default for Linear (uniform in ±1/√fan-in), drawn from the seed: the global generator is
                // shared and unseeded.
                var bound = 1 / Math.Sqrt(layer.weight!.shape[1]);
                layer.weight.uniform_(-bound, bound, weights);
                layer.bias?.uniform_(-bound, bound, weights);
            }
        // identical replicas, as DDP does
        foreach (var p in model.parameters()) comm.Broadcast(p.detach(), root: 0);
        var optimizer = optim.AdamW(model.parameters(), lr: 0.01);
        var losses = new List<double>();
        var times = new List<double>();
        long intra = 0, inter = 0;
        for (var step = 0; step < o.Steps; step++)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            var before = comm.Counters.Snapshot();
            var x = randn([o.BatchPerRank, Inputs], generator: data);                  // [B, I]
            // [B, 1], argument of unit variance
            var y = x.matmul(truth).div(scale).sin();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.call(x), y);
            loss.backward();
            using var ranks = comm.Size.ToScalar();                                    // held for the calls (TK0001)
            foreach (var p in model.parameters())
            {
                comm.AllReduce(p.grad!);
                p.grad!.div_(ranks);
            }
            optimizer.step();
            var traffic = comm.Counters.Snapshot().Since(before);
            (intra, inter) = (traffic.IntraBytes, traffic.InterBytes);
            losses.Add(loss.item<float>());
            times.Add(clock.Elapsed.TotalSeconds);
            context.Record(step, MetricNames.Loss, losses[^1]);
            context.Record(step, MetricNames.IntraBytes, intra);
            context.Record(step, MetricNames.InterBytes, inter);
            context.Record(step, MetricNames.StepSeconds, times[^1]);
            Restarts.Drill(context.RunPath, comm.Rank, step + 1);
        }
        double[] parameters;
        using (torch.NewDisposeScope())   // holds the detached temporaries while libtorch reads them
            parameters = [.. model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray())
                .Select(v => (double)v)];
        return new RankOutcome(losses, times, intra, inter, parameters);
    }

    /// <inheritdoc/>
    int IRestartableJob<QuickstartOptions>.MaxRestarts(QuickstartOptions options) => options.MaxRestarts;

    /// <summary>Never called: the quickstart writes no checkpoints, so a restart starts over with the same
    /// options.</summary>
    QuickstartOptions IRestartableJob<QuickstartOptions>.ResumeAt(QuickstartOptions options, string checkpoint,
        int step) => options;

    /// <inheritdoc/>
    public override QuickstartResult Finish(JobRun<QuickstartOptions> run, IReadOnlyList<RankOutcome> outcomes)
    {
        var loss = Enumerable.Range(0, run.Options.Steps).Select(s => outcomes.Average(r => r.Loss[s])).ToList();
        var rank0 = outcomes[0];
        var divergence = outcomes.Skip(1).Select(r => r.Parameters.Zip(rank0.Parameters, (a,
            b) => Math.Abs(a - b)).DefaultIfEmpty(0).Max()).DefaultIfEmpty(0).Max();
        // Ranks send different amounts across groups (in a ring only the ranks at a group's edge do), so report the
        // largest.
        var result = new QuickstartResult(run.Id, run.Path, run.File("report.html"), loss,
            outcomes.Max(r => r.IntraBytesPerStep), outcomes.Max(r => r.InterBytesPerStep),
                Runtime.Statistics.Median(rank0.StepSeconds), divergence);
        var points = RunReader.ReadAll(run.Path);
        HtmlReport.Write(result.ReportPath, result.Title, [("ranks / group size",
            $"{run.Options.Launch.Ranks} / {run.Options.Launch.GroupSize}"), .. result.Facts()],
        [
            Charts.MetricByRank(points, MetricNames.Loss),
            Charts.MetricByRank(points, MetricNames.InterBytes),
            Charts.MetricByRank(points, MetricNames.StepSeconds),
        ]);
        return result;
    }

    /// <summary>What one rank measured.</summary>
    /// <param name="Loss">Loss per step.</param>
    /// <param name="StepSeconds">Wall time per step.</param>
    /// <param name="IntraBytesPerStep">Bytes sent inside the group in the last step.</param>
    /// <param name="InterBytesPerStep">Bytes sent across groups in the last step.</param>
    /// <param name="Parameters">The final parameters (to check the replicas agree).</param>
    public sealed record RankOutcome(List<double> Loss, List<double> StepSeconds, long IntraBytesPerStep,
        long InterBytesPerStep, double[] Parameters);
}
