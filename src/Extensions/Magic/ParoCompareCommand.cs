using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Plotly.NET;
using Toolkit.Paro;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro compare --strategies NNN,NIG,GGG ...</c>: the twin of <see cref="ParoCompare.RunAsync"/>; measured memory, traffic and throughput side by side.</summary>
public sealed class ParoCompareCommand : ParoJobCommand
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective()
    {
        var directive = new KernelActionDirective("compare", "Train the same job under several strategies and chart measured memory, traffic and throughput side by side.")
        {
            Parameters = { new KernelDirectiveParameter("--strategies", "Comma-separated codes (default: the ten trained strategies).") },
        };
        foreach (var parameter in TrainParameters.Create(withStrategy: false)) directive.Parameters.Add(parameter);
        return directive;
    }

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--strategies</c>.</summary>
    public string? Strategies { get; set; }

    internal IReadOnlyList<string> StrategyList() => Strategies is null
        ? ShardingStrategy.Trained.Select(s => s.Code).ToList()
        : Strategies.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    internal static async Task HandleAsync(ParoCompareCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!paro compare", Options);
        var points = new Collector<(string Strategy, MetricPoint Point)>();
        var job = ParoCompare.RunAsync(command.ToOptions(), command.StrategyList(), points, context.CancellationToken);
        var results = await LiveDisplay.RunAsync(context, job, () => LossByStrategy(points.Snapshot()), TimeSpan.FromSeconds(1));
        context.Display(ParoCharts.MeasuredMemory(results), "text/html");
        context.Display(ParoCharts.MeasuredTraffic(results), "text/html");
        context.Display(ParoCharts.MeasuredThroughput(results), "text/html");
        context.DisplayAs(Html.Table("Measured per strategy (rank 0)", results.Select(r =>
            (r.Strategy, $"loss {r.Steps[^1].Loss:F4}; bytes params/grads/optimizer {r.Memory[0].ParamsBytes}/{r.Memory[0].GradsBytes}/{r.Memory[0].OptimizerBytes}; intra/inter per step {r.Comm.IntraBytesPerStep}/{r.Comm.InterBytesPerStep}; {r.Throughput.TokensPerSecond:F0} tokens/s"))), "text/html");
    }

    private static GenericChart LossByStrategy(IReadOnlyList<(string Strategy, MetricPoint Point)> points) =>
        Charts.Lines("loss of rank 0, strategies one after another", points.Where(p => p.Point.Rank == 0 && p.Point.Name == "loss")
            .GroupBy(p => p.Strategy).Select(g => (g.Key, (IReadOnlyList<MetricPoint>)g.Select(p => p.Point).ToList())));
}
