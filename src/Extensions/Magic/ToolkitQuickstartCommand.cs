using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Plotly.NET;
using Toolkit.Quickstart;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!toolkit quickstart [--ranks N] [--group-size M] [--steps K] [--seed S]</c>: the twin of <see cref="QuickstartJob.RunAsync"/>, with live charts.</summary>
public sealed class ToolkitQuickstartCommand : KernelDirectiveCommand
{
    private static readonly QuickstartOptions Defaults = new();

    /// <summary>A new directive instance (a directive can belong to one kernel only).</summary>
    internal static KernelActionDirective CreateDirective() => new("quickstart", "Train a small network data-parallel on in-process ranks; loss and traffic charts update while it runs.")
    {
        Parameters =
        {
            new KernelDirectiveParameter("--ranks", $"In-process ranks (default {Defaults.Ranks}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--group-size", $"Ranks per group, must divide --ranks (default {Defaults.GroupSize}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--steps", $"Optimizer steps (default {Defaults.Steps}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--seed", $"Seed (default {Defaults.Seed}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--runs-dir", $"Folder for run folders (default {Defaults.RunsDirectory}).") { TypeHint = "file" },
        },
    };

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--ranks</c>.</summary>
    public int Ranks { get; set; } = Defaults.Ranks;
    /// <summary><c>--group-size</c>.</summary>
    public int GroupSize { get; set; } = Defaults.GroupSize;
    /// <summary><c>--steps</c>.</summary>
    public int Steps { get; set; } = Defaults.Steps;
    /// <summary><c>--seed</c>.</summary>
    public int Seed { get; set; } = Defaults.Seed;
    /// <summary><c>--runs-dir</c>.</summary>
    public string RunsDir { get; set; } = Defaults.RunsDirectory;

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => MagicOptions.ValidationErrors(() => ToOptions());

    internal QuickstartOptions ToOptions() =>
        new QuickstartOptions { Ranks = Ranks, GroupSize = GroupSize, Steps = Steps, Seed = Seed, RunsDirectory = RunsDir }.Validate();

    internal static async Task HandleAsync(ToolkitQuickstartCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!toolkit quickstart", Options);
        var metrics = new Collector<MetricPoint>();
        var job = QuickstartJob.RunAsync(command.ToOptions(), metrics, context.CancellationToken);
        var result = await LiveDisplay.RunAsync(context, job, () => Render(metrics.Snapshot()), TimeSpan.FromSeconds(1));
        context.DisplayAs(Html.Table($"Quickstart run {result.RunId}",
        [
            ("loss", $"{result.Loss[0]:F4} -> {result.Loss[^1]:F4}"),
            ("bytes per rank per step, largest over ranks (intra / inter)", $"{result.IntraBytesPerStep} / {result.InterBytesPerStep}"),
            ("median step", $"{result.StepSeconds * 1000:F1} ms"),
            ("run folder", result.RunPath),
            ("report", result.ReportPath),
        ]), "text/html");
    }

    private static GenericChart Render(IReadOnlyList<MetricPoint> points) => Plotly.NET.CSharp.Chart.Grid(
        [Charts.MetricByRank(points, "loss"), Charts.MetricByRank(points, "comm.inter_bytes")], 1, 2, SubPlotTitles: new[] { "loss", "inter-group bytes per step" });
}
