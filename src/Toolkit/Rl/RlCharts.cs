using Plotly.NET;
using Plotly.NET.CSharp;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Rl;

/// <summary>The RL charts: reward and held-out accuracy, gradient norm, the mismatch diagnostics, rollout throughput;
/// one line per run when runs are compared.</summary>
internal static class RlCharts
{
    /// <summary>The metrics charted, with their titles.</summary>
    public static IReadOnlyList<(string Metric, string Title)> Panels { get; } =
    [
        (RlTrainJob.Metrics.RewardMean, "reward (mean)"),
        (RlTrainJob.Metrics.HeldOutAccuracy, "held-out accuracy"),
        (RlTrainJob.Metrics.GradNorm, "gradient norm"),
        (RlTrainJob.Metrics.LogProbDiffMax, "max |log p_train - log p_infer|"),
        (RlTrainJob.Metrics.KlInferTrain, "KL(infer || train), k3"),
        (RlTrainJob.Metrics.MaskedFraction, "masked token fraction"),
        (RlTrainJob.Metrics.TokensPerSecond, "rollout tokens/s"),
        (RlTrainJob.Metrics.RoutingFlips, "routing flips, engine vs trainer (moe)"),
    ];

    /// <summary>One chart per panel, one line per run (<paramref name="points"/> tagged with their run's
    /// name).</summary>
    public static IReadOnlyList<GenericChart> ByRun(IReadOnlyList<(string Run, MetricPoint Point)> points) =>
        [.. Panels.Select(p => Charts.Lines(p.Title, points.Where(x => x.Point.Name == p.Metric).GroupBy(x => x.Run)
            .Select(g => (g.Key, (IReadOnlyList<MetricPoint>)g.Select(x => x.Point).ToList()))))];

    /// <summary>A grid of every panel for live display.</summary>
    public static GenericChart Live(IReadOnlyList<(string Run, MetricPoint Point)> points) =>
        Plotly.NET.CSharp.Chart.Grid(ByRun(points), 3, 3,
            SubPlotTitles: Panels.Select(p => p.Title).ToArray()).WithSize(1000, 800);
}
