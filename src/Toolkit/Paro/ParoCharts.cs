using Plotly.NET;
using Plotly.NET.CSharp;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Paro;

/// <summary>The PaRO charts: predicted plans, measured comparisons, and live training.</summary>
internal static class ParoCharts
{
    private const double GiB = 1024.0 * 1024 * 1024;

    /// <summary>Predicted memory per rank stacked by component for each strategy, against the device limit.</summary>
    public static GenericChart PlanMemory(ParoPlan plan)
    {
        var names = plan.Strategies.Select(Label).ToList();
        return Charts.StackedColumns($"Memory per GPU: {plan.Model.Name} on {plan.Cluster.Ranks} GPUs", names,
        [
            ("parameters", plan.Strategies.Select(e => e.Memory.Parameters / GiB).ToList()),
            ("gradients", plan.Strategies.Select(e => e.Memory.Gradients / GiB).ToList()),
            ("optimizer states", plan.Strategies.Select(e => e.Memory.Optimizer / GiB).ToList()),
            ("activations", plan.Strategies.Select(e => e.Memory.Activations / GiB).ToList()),
            ("gathered parameters", plan.Strategies.Select(e => e.Memory.GatheredParameters / GiB).ToList()),
        ], "GiB", ("device memory", plan.Cluster.DeviceMemoryBytes / GiB));
    }

    /// <summary>Predicted bytes per GPU per step, intra- and inter-group.</summary>
    public static GenericChart PlanTraffic(ParoPlan plan)
        => Charts.GroupedColumns("Bytes sent per GPU per step (predicted)", plan.Strategies.Select(Label).ToList(),
    [
        ("intra-group", plan.Strategies.Select(e => e.IntraBytesPerStep / 1e9).ToList()),
        ("inter-group", plan.Strategies.Select(e => e.InterBytesPerStep / 1e9).ToList()),
    ], "GB");

    /// <summary>Predicted step time, split into compute, communication and optimizer.</summary>
    public static GenericChart PlanStepTime(ParoPlan plan) => Charts.StackedColumns("Predicted step time",
        plan.Strategies.Select(Label).ToList(),
    [
        ("compute", plan.Strategies.Select(e => e.ComputeSeconds).ToList()),
        ("communication", plan.Strategies.Select(e => e.CommunicationSeconds).ToList()),
        ("optimizer", plan.Strategies.Select(e => e.OptimizerSeconds).ToList()),
    ], "seconds");

    /// <summary>Measured memory of rank 0 stacked by component, one column per run.</summary>
    public static GenericChart MeasuredMemory(IReadOnlyList<ParoTrainResult> runs)
        => Charts.StackedColumns("Measured memory of rank 0 by component, per strategy",
            runs.Select(r => r.Strategy).ToList(),
    [
        ("parameters", runs.Select(r => (double)r.Memory[0].ParamsBytes).ToList()),
        ("gradients", runs.Select(r => (double)r.Memory[0].GradsBytes).ToList()),
        ("optimizer states", runs.Select(r => (double)r.Memory[0].OptimizerBytes).ToList()),
        ("peak transient",
            runs.Select(r => (double)(r.Memory[0].PeakBytes - r.Memory[0].ParamsBytes - r.Memory[0].GradsBytes
                - r.Memory[0].OptimizerBytes)).ToList()),
    ], "bytes");

    /// <summary>Measured bytes per rank per step, intra and inter, one pair per run.</summary>
    public static GenericChart MeasuredTraffic(IReadOnlyList<ParoTrainResult> runs)
        => Charts.GroupedColumns("Measured bytes sent per rank per step, per strategy",
            runs.Select(r => r.Strategy).ToList(),
    [
        ("intra-group", runs.Select(r => (double)r.Comm.IntraBytesPerStep).ToList()),
        ("inter-group", runs.Select(r => (double)r.Comm.InterBytesPerStep).ToList()),
    ], "bytes");

    /// <summary>Measured throughput per run.</summary>
    public static GenericChart MeasuredThroughput(IReadOnlyList<ParoTrainResult> runs) =>
        Charts.Bars("Measured training throughput per strategy", runs.Select(r => r.Strategy).ToList(),
            runs.Select(r => r.Throughput.TokensPerSecond).ToList(), "tokens / s");

    /// <summary>Live view of a training run: loss and traffic per rank, and the memory of each rank by
    /// component.</summary>
    public static GenericChart Live(string title, IReadOnlyList<MetricPoint> points)
    {
        var ranks = points.Select(p => p.Rank).Distinct().Order().ToList();
        double Last(int rank, string name) => points.LastOrDefault(p => p.Rank == rank && p.Name == name)?.Value ?? 0;
        Panel[] lines = [Charts.MetricPanel(Charts.ByRank(points, MetricNames.Loss), MetricNames.Loss),
            Charts.MetricPanel(Charts.ByRank(points, MetricNames.InterBytes), MetricNames.InterBytes),
            Charts.MetricPanel(Charts.ByRank(points, MetricNames.IntraBytes), MetricNames.IntraBytes)];
        var memory = Charts.StackedColumns("", [.. ranks.Select(r => $"rank {r}")],
        [
            ("parameters", ranks.Select(r => Last(r, ParoTrainJob.Metrics.ParamsBytes)).ToList()),
            ("gradients", ranks.Select(r => Last(r, ParoTrainJob.Metrics.GradsBytes)).ToList()),
            ("optimizer states", ranks.Select(r => Last(r, ParoTrainJob.Metrics.OptimizerBytes)).ToList()),
        ], "bytes");
        return Charts.Grid(title, [.. Charts.Draw(lines), memory],
            [.. lines.Select(p => p.Title), "memory per rank by component (measured)"], columns: 2);
    }

    private static string Label(StrategyEstimate e) => e.Feasible ? e.Strategy.Code : $"{e.Strategy.Code} (no fit)";
}
