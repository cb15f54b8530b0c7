using System.Diagnostics;
using Toolkit.Comm;
using Toolkit.Reporting;
using Toolkit.Runs;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Quickstart;

/// <summary>
/// The smallest end-to-end job of the toolkit: n in-process ranks train one regression network with
/// data parallelism (each rank its own samples; gradients all-reduced with the ring, then averaged),
/// recording loss, traffic and step time to a run folder and an offline HTML report.
/// </summary>
public static class QuickstartJob
{
    private const int Inputs = 16;

    /// <summary>Runs the job. <paramref name="progress"/> receives every metric as it is recorded.</summary>
    public static async Task<QuickstartResult> RunAsync(QuickstartOptions options, IProgress<MetricPoint>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        Devices.ConfigureCpuThreads(options.Ranks);
        using var run = RunDirectory.Create(options.RunsDirectory, "quickstart", options);
        run.Log($"quickstart: {options.Ranks} in-process ranks, groups of {options.GroupSize}, {options.Steps} steps");
        void Record(int step, int rank, string name, double value)
        {
            run.Metric(step, rank, name, value);
            progress?.Report(new MetricPoint(DateTimeOffset.UtcNow, step, rank, name, value));
        }

        var perRank = await InProcessCluster.RunAsync(options.Ranks, options.GroupSize,
            comm => TrainRank(comm, options, Record, cancellationToken), cancellationToken);

        var loss = Enumerable.Range(0, options.Steps).Select(s => perRank.Average(r => r.Loss[s])).ToList();
        var rank0 = perRank[0];
        var divergence = perRank.Skip(1).Select(r => r.Parameters.Zip(rank0.Parameters, (a, b) => Math.Abs(a - b)).DefaultIfEmpty(0).Max()).DefaultIfEmpty(0).Max();
        var stepSeconds = Median(rank0.StepSeconds);
        // Ranks send different amounts across groups (in a ring only the ranks at a group's edge do), so report the largest.
        var (intra, inter) = (perRank.Max(r => r.IntraBytesPerStep), perRank.Max(r => r.InterBytesPerStep));
        var report = run.File("report.html");
        var points = RunReader.ReadAll(run.Path);
        HtmlReport.Write(report, $"Quickstart run {run.Id}",
        [
            ("ranks / group size", $"{options.Ranks} / {options.GroupSize}"),
            ("final loss", loss[^1].ToString("G4", System.Globalization.CultureInfo.InvariantCulture)),
            ("bytes per rank per step, largest over ranks (intra / inter)", $"{intra} / {inter}"),
            ("median step time", $"{stepSeconds * 1000:F1} ms"),
            ("replica divergence", divergence.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)),
        ],
        [
            Charts.MetricByRank(points, "loss"),
            Charts.MetricByRank(points, "comm.inter_bytes", "inter-group bytes per step"),
            Charts.MetricByRank(points, "step_seconds", "step time (s)"),
        ]);
        run.Log($"finished: loss {loss[0]:G4} -> {loss[^1]:G4}; report {report}");
        return new QuickstartResult(run.Id, run.Path, report, loss, intra, inter, stepSeconds, divergence);
    }

    private static RankOutcome TrainRank(Communicator comm, QuickstartOptions o, Action<int, int, string, double> record, CancellationToken token)
    {
        using var data = new Generator((ulong)(o.Seed * 1000 + comm.Rank));
        using var teacher = new Generator((ulong)o.Seed);
        using var truth = randn([Inputs, 1], generator: teacher);                      // [I, 1] the function to learn
        using var model = nn.Sequential(nn.Linear(Inputs, o.Hidden), nn.Tanh(), nn.Linear(o.Hidden, 1));
        foreach (var p in model.parameters()) comm.Broadcast(p.detach(), root: 0);     // identical replicas, as DDP does
        var optimizer = optim.AdamW(model.parameters(), lr: 0.01);
        var losses = new List<double>();
        var times = new List<double>();
        long intra = 0, inter = 0;
        for (var step = 0; step < o.Steps; step++)
        {
            token.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            var before = comm.Counters.Snapshot();
            var x = randn([o.BatchPerRank, Inputs], generator: data);                  // [B, I]
            var y = x.matmul(truth).div(Math.Sqrt(Inputs)).sin();                      // [B, 1], argument of unit variance
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.call(x), y);
            loss.backward();
            foreach (var p in model.parameters())
            {
                comm.AllReduce(p.grad!);
                p.grad!.div_(comm.Size);
            }
            optimizer.step();
            var traffic = comm.Counters.Snapshot().Since(before);
            (intra, inter) = (traffic.IntraBytes, traffic.InterBytes);
            var lossValue = loss.item<float>();
            losses.Add(lossValue);
            times.Add(clock.Elapsed.TotalSeconds);
            record(step, comm.Rank, "loss", lossValue);
            record(step, comm.Rank, "comm.intra_bytes", intra);
            record(step, comm.Rank, "comm.inter_bytes", inter);
            record(step, comm.Rank, "step_seconds", times[^1]);
        }
        var parameters = model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).Select(v => (double)v).ToArray();
        return new RankOutcome(losses, times, intra, inter, parameters);
    }

    private static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private sealed record RankOutcome(List<double> Loss, List<double> StepSeconds, long IntraBytesPerStep, long InterBytesPerStep, double[] Parameters);
}
