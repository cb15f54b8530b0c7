using Plotly.NET;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Rl;

/// <summary>The IcePop experiment's charts: per diagnostic, one line per correction, the mean over its seeds at each
/// step.</summary>
internal static class IcePopCharts
{
    private static readonly (string Title, Func<RlStep, double> Value)[] Panels =
    [
        ("held-out accuracy (mean over seeds)", s => s.HeldOutAccuracy),
        ("KL(infer || train), k3", s => s.KlInferTrain),
        ("max |log p_train - log p_infer|", s => s.LogProbDiffMax),
        ("gradient norm", s => s.GradNorm),
        ("masked token fraction", s => s.MaskedFraction),
    ];

    /// <summary>One chart per diagnostic.</summary>
    public static IReadOnlyList<GenericChart> PerCorrection(IReadOnlyList<IcePopRun> runs) =>
        [.. Panels.Select(panel => Charts.Lines(panel.Title, runs.Where(r => r.Steps.Count > 0)
            .GroupBy(r => r.Correction).Select(g => (g.Key, (IReadOnlyList<MetricPoint>)[.. g
                .SelectMany(r => r.Steps).Where(s => double.IsFinite(panel.Value(s))).GroupBy(s => s.Step)
                .OrderBy(s => s.Key).Select(s => new MetricPoint(DateTimeOffset.UnixEpoch, s.Key, 0, panel.Title,
                    s.Average(panel.Value)))]))))];
}
