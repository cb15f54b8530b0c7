using Plotly.NET;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Rl;

/// <summary>The RL charts: reward and held-out accuracy, gradient norm, the mismatch diagnostics, rollout throughput
/// and (for a mixture of experts) routing flips; one line per run when runs are compared.</summary>
internal static class RlCharts
{
    /// <summary>The metrics charted, in order (routing flips only when a run has them).</summary>
    public static IReadOnlyList<string> Metrics { get; } =
    [
        RlTrainJob.Metrics.RewardMean, RlTrainJob.Metrics.HeldOutAccuracy, RlTrainJob.Metrics.GradNorm,
        RlTrainJob.Metrics.LogProbDiffMax, RlTrainJob.Metrics.KlInferTrain, RlTrainJob.Metrics.MaskedFraction,
        RlTrainJob.Metrics.TokensPerSecond, RlTrainJob.Metrics.RoutingFlips,
    ];

    /// <summary>One panel per metric with data, one line per run (<paramref name="points"/> tagged with their run's
    /// name).</summary>
    public static IReadOnlyList<Panel> ByRun(IReadOnlyList<(string Run, MetricPoint Point)> points) =>
        [.. Metrics.Where(m => m != RlTrainJob.Metrics.RoutingFlips || points.Any(x => x.Point.Name == m))
            .Select(m => Charts.MetricPanel(points.Where(x => x.Point.Name == m).GroupBy(x => x.Run)
                .Select(g => (g.Key, (IReadOnlyList<MetricPoint>)[.. g.Select(x => x.Point)])), m))];

    /// <summary>Every panel in one figure, for live display.</summary>
    public static GenericChart Live(IReadOnlyList<(string Run, MetricPoint Point)> points)
    {
        var runs = points.Select(p => p.Run).Distinct().ToList();
        var title = runs.Count switch
        {
            0 => "RL training (waiting for the first step)",
            1 => $"RL training: {runs[0]}",
            _ => $"RL training, one line per run: {string.Join(", ", runs)}",
        };
        return Charts.Figure(title, ByRun(points), columns: 3);
    }
}
