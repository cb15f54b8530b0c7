using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!toolkit show --run PATH [--metric NAME]</c>: re-plots a finished (or running) run from its
/// folder.</summary>
public sealed class ToolkitShowCommand : KernelDirectiveCommand
{
    /// <summary>A new directive instance (a directive can belong to one kernel only).</summary>
    internal static KernelActionDirective CreateDirective() => new("show",
        "Plot the metrics of a run folder (finished or still running).")
    {
        Parameters =
        {
            new KernelDirectiveParameter("--run", "Path of the run folder (runs/<id>).") { Required = true,
                TypeHint = "file" },
            new KernelDirectiveParameter("--metric", "Metric to plot (default: every metric)."),
        },
    };

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--run</c>.</summary>
    public string Run { get; set; } = "";
    /// <summary><c>--metric</c>.</summary>
    public string? Metric { get; set; }

    internal static Task HandleAsync(ToolkitShowCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!toolkit show", Options);
        var points = RunReader.ReadAll(command.Run);
        var names = command.Metric is null ? points.Select(p => p.Name).Distinct().ToList() : [command.Metric];
        if (command.Metric is not null && !points.Any(p => p.Name == command.Metric))
            throw new ArgumentException(
                $"Run {command.Run} has no metric '{command.Metric}'. Metrics: {string.Join(", " +
                    "", points.Select(p => p.Name).Distinct())}.");
        foreach (var name in names) context.Display(Charts.MetricByRank(points, name), "text/html");
        return Task.CompletedTask;
    }
}
