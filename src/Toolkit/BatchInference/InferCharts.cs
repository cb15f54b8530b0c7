using Plotly.NET;
using Toolkit.Reporting;

namespace Toolkit.BatchInference;

/// <summary>
/// The batch-inference figure, from status snapshots taken while a job runs: progress, throughput and workers against
/// seconds since the coordinator started, and per pipeline stage the busy fraction (the bottleneck is the busiest) and
/// the queue in front of it.
/// </summary>
internal static class InferCharts
{
    private const string Seconds = "seconds since start";

    /// <summary>One panel per view of the job.</summary>
    public static IReadOnlyList<Panel> Panels(IReadOnlyList<InferStatus> snapshots)
    {
        IReadOnlyList<double> time = [.. snapshots.Select(s => s.Elapsed)];
        IReadOnlyList<Series> One(Func<InferStatus, double> value) =>
            [new Series("", time, [.. snapshots.Select(value)])];
        IReadOnlyList<Series> PerStage(Func<InferStatus, StageReport, double> value) =>
            [.. snapshots.SelectMany(s => s.Stages.Select(stage => (s, stage))).GroupBy(x => x.stage.Name)
                .Select(g => new Series(g.Key, [.. g.Select(x => x.s.Elapsed)], [.. g.Select(x
                    => value(x.s, x.stage))]))];
        return
        [
            new("records done", Seconds, "records", One(s => s.RecordsDone)),
            new("throughput", Seconds, "records/s", One(s => s.RecordsPerSecond)),
            new("active workers", Seconds, "workers", One(s => s.ActiveWorkers)),
            new("busy fraction per stage (per task)", Seconds, "fraction of time busy",
                PerStage((s, stage) => s.Elapsed > 0 ? stage.Busy / Math.Max(1, stage.Tasks) / s.Elapsed : 0)),
            new("records queued in front of each stage", Seconds, "records", PerStage((_, stage) => stage.Queue)),
            new("records quarantined", Seconds, "records", One(s => s.Quarantined)),
        ];
    }

    /// <summary>Every panel in one figure, for live display.</summary>
    public static GenericChart Live(IReadOnlyList<InferStatus> snapshots, string title) =>
        Charts.Figure(title, Panels(snapshots), columns: 3);
}
