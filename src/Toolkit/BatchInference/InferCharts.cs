using Plotly.NET;
using Plotly.NET.CSharp;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.BatchInference;

/// <summary>
/// The batch-inference charts, from status snapshots taken while a job runs: progress, throughput and workers over
/// time, and per stage the busy fraction (the bottleneck is the busiest) and the queue in front of it.
/// </summary>
internal static class InferCharts
{
    /// <summary>The panels' titles, in order.</summary>
    public static IReadOnlyList<string> Titles { get; } =
        ["records done", "records/s", "workers", "stage busy fraction (per task)", "queue depth (records)",
            "quarantined"];

    /// <summary>The snapshots as metric samples (step = seconds since the coordinator started).</summary>
    public static IReadOnlyList<MetricPoint> Points(IReadOnlyList<InferStatus> snapshots)
    {
        var points = new List<MetricPoint>();
        foreach (var s in snapshots)
        {
            var step = (int)Math.Round(s.Elapsed);
            var time = DateTimeOffset.UnixEpoch.AddSeconds(s.Elapsed);
            points.Add(new(time, step, 0, InferMetrics.RecordsDone, s.RecordsDone));
            points.Add(new(time, step, 0, InferMetrics.RecordsPerSecond, s.RecordsPerSecond));
            points.Add(new(time, step, 0, InferMetrics.Workers, s.ActiveWorkers));
            points.Add(new(time, step, 0, InferMetrics.Quarantined, s.Quarantined));
            foreach (var stage in s.Stages)
            {
                points.Add(new(time, step, 0, InferMetrics.StageBusyPrefix + stage.Name,
                    s.Elapsed > 0 ? stage.Busy / Math.Max(1, stage.Tasks) / s.Elapsed : 0));
                points.Add(new(time, step, 0, InferMetrics.StageQueuePrefix + stage.Name, stage.Queue));
            }
        }
        return points;
    }

    /// <summary>One chart per panel.</summary>
    public static IReadOnlyList<GenericChart> Panels(IReadOnlyList<MetricPoint> points)
    {
        IReadOnlyList<(string, IReadOnlyList<MetricPoint>)> Series(string prefix) =>
            [.. points.Where(p => p.Name.StartsWith(prefix,
                StringComparison.Ordinal)).GroupBy(p => p.Name[prefix.Length..])
                .Select(g => (g.Key, (IReadOnlyList<MetricPoint>)g.ToList()))];
        IReadOnlyList<(string, IReadOnlyList<MetricPoint>)> One(string name) => [("job",
            [.. points.Where(p => p.Name == name)])];
        return
        [
            Charts.Lines(Titles[0], One(InferMetrics.RecordsDone)),
            Charts.Lines(Titles[1], One(InferMetrics.RecordsPerSecond)),
            Charts.Lines(Titles[2], One(InferMetrics.Workers)),
            Charts.Lines(Titles[3], Series(InferMetrics.StageBusyPrefix)),
            Charts.Lines(Titles[4], Series(InferMetrics.StageQueuePrefix)),
            Charts.Lines(Titles[5], One(InferMetrics.Quarantined)),
        ];
    }

    /// <summary>A grid of every panel for live display.</summary>
    public static GenericChart Live(IReadOnlyList<InferStatus> snapshots) =>
        Plotly.NET.CSharp.Chart.Grid(Panels(Points(snapshots)), 2, 3, SubPlotTitles: Titles.ToArray()).WithSize(
            1000, 560);
}
