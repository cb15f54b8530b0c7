using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Directives;
using Plotly.NET;
using Toolkit.Quickstart;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!toolkit quickstart [--ranks N] [--group-size M] [--steps K] ...</c>: the twin of
/// <see cref="QuickstartJob.RunAsync"/>, with live charts.</summary>
public sealed class ToolkitQuickstartCommand : OptionsMagicCommand<QuickstartOptions>
{
    /// <summary>A new directive instance (a directive can belong to one kernel only).</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("quickstart",
            "Train a small network data-parallel on in-process ranks; loss and traffic charts update while it runs.",
                new QuickstartOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "toolkit quickstart");

    internal static async Task HandleAsync(ToolkitQuickstartCommand command, KernelInvocationContext context)
    {
        var metrics = new Collector<MetricPoint>();
        var job = QuickstartJob.RunAsync(command.Bind(new(), "toolkit quickstart"), metrics, context.CancellationToken);
        var result = await LiveDisplay.RunAsync(context, job, () => Render(metrics.Snapshot()),
            TimeSpan.FromSeconds(1), metrics);
        context.DisplayAs(Html.Table(result), "text/html");
    }

    /// <summary>Loss and inter-group traffic side by side; the ranks are named once, in the first panel's
    /// legend.</summary>
    private static GenericChart Render(IReadOnlyList<MetricPoint> points) =>
        Charts.Side("Quickstart: loss and traffic per rank",
    [
        (Charts.MetricByRank(points, MetricNames.Loss, "loss"), "loss"),
        (Charts.MetricByRank(points, MetricNames.InterBytes, "bytes", showLegend: false), "inter-group bytes per step"),
    ]);
}
