using Plotly.NET;
using Toolkit.Reporting;

namespace Toolkit.Rl;

/// <summary>The IcePop experiment's figure: per diagnostic a panel, one line per correction, the mean over its seeds
/// at each step.</summary>
internal static class IcePopCharts
{
    private static readonly (string Metric, Func<RlStep, double> Value)[] Panels =
    [
        (RlTrainJob.Metrics.HeldOutAccuracy, s => s.HeldOutAccuracy),
        (RlTrainJob.Metrics.KlInferTrain, s => s.KlInferTrain),
        (RlTrainJob.Metrics.LogProbDiffMax, s => s.LogProbDiffMax),
        (RlTrainJob.Metrics.GradNorm, s => s.GradNorm),
        (RlTrainJob.Metrics.MaskedFraction, s => s.MaskedFraction),
    ];

    /// <summary>The figure: a panel per diagnostic, a line per correction (mean over seeds).</summary>
    public static GenericChart PerCorrection(IcePopExperimentResult experiment) =>
        Charts.Figure($"{experiment.Title}: mean over seeds, one line per correction", Diagnostics(experiment.Runs),
            columns: 3);

    /// <summary>One panel per diagnostic.</summary>
    public static IReadOnlyList<Panel> Diagnostics(IReadOnlyList<IcePopRun> runs) =>
        [.. Panels.Select(panel =>
        {
            var label = MetricLabels.Of(panel.Metric);
            return new Panel(label.Title, "step", label.Unit, [.. runs.Where(r => r.Steps.Count > 0)
                .GroupBy(r => r.Correction).Select(g =>
                {
                    var means = g.SelectMany(r => r.Steps).Where(s => double.IsFinite(panel.Value(s)))
                        .GroupBy(s => s.Step).OrderBy(s => s.Key).ToList();
                    return new Series(g.Key, [.. means.Select(s => (double)s.Key)],
                        [.. means.Select(s => s.Average(panel.Value))]);
                })], label.LogY);
        })];
}
