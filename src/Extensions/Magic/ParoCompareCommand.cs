using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Directives;
using Plotly.NET;
using Toolkit.Paro;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro compare --strategies NNN,NIG,GGG ...</c>: the twin of <see cref="ParoCompare.RunAsync"/>;
/// measured memory, traffic and throughput side by side.</summary>
public sealed class ParoCompareCommand : OptionsMagicCommand<ParoCompareOptions>
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("compare",
            "Train the same job under several strategies and chart measured memory, traffic and throughput side by " +
                "side.", new ParoCompareOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "paro compare");

    internal static async Task HandleAsync(ParoCompareCommand command, KernelInvocationContext context)
    {
        var points = new Collector<(string Strategy, MetricPoint Point)>();
        var job = ParoCompare.RunAsync(command.Bind(new(), "paro compare"), points, context.CancellationToken);
        var results = await LiveDisplay.RunAsync(context, job, () => LossByStrategy(points.Snapshot()),
            TimeSpan.FromSeconds(1));
        context.Display(ParoCharts.MeasuredMemory(results), "text/html");
        context.Display(ParoCharts.MeasuredTraffic(results), "text/html");
        context.Display(ParoCharts.MeasuredThroughput(results), "text/html");
        context.DisplayAs(Html.Table("Measured per strategy (rank 0)", results.Select(r =>
            (r.Strategy,
                $"loss {r.Steps[^1].Loss:F4}; bytes params/grads/optimizer {r.Memory[0].ParamsBytes}/" +
                $"{r.Memory[0].GradsBytes}/{r.Memory[0].OptimizerBytes}; intra/inter per step " +
                $"{r.Comm.IntraBytesPerStep}/{r.Comm.InterBytesPerStep}; {r.Throughput.TokensPerSecond:F0} tokens/s"))),
            "text/html");
    }

    private static GenericChart LossByStrategy(IReadOnlyList<(string Strategy, MetricPoint Point)> points) =>
        Charts.Lines("Training loss of rank 0 per strategy (the strategies run one after another)",
            points.Where(p => p.Point.Rank == 0 && p.Point.Name == MetricNames.Loss)
            .GroupBy(p => p.Strategy).Select(g => (g.Key,
                (IReadOnlyList<MetricPoint>)g.Select(p => p.Point).ToList())), "loss");
}
