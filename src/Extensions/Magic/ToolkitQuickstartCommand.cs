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
        var options = command.Bind(new(), "toolkit quickstart");
        var job = QuickstartJob.RunAsync(options, metrics, context.CancellationToken);
        var result = await LiveDisplay.RunAsync(context, job, () => Render(options, metrics.Snapshot()),
            TimeSpan.FromSeconds(1), metrics);
        context.DisplayAs(Html.Table(result), "text/html");
    }

    /// <summary>Loss and inter-group traffic per rank side by side (the ranks named once in the legend).</summary>
    private static GenericChart Render(QuickstartOptions options, IReadOnlyList<MetricPoint> points)
    {
        return Charts.Figure($"Quickstart: {options.Launch.Ranks} ranks in groups of {options.Launch.GroupSize} " +
            "training data-parallel",
            [Charts.MetricPanel(Charts.ByRank(points, MetricNames.Loss), MetricNames.Loss),
                Charts.MetricPanel(Charts.ByRank(points, MetricNames.InterBytes), MetricNames.InterBytes)]);
    }
}
