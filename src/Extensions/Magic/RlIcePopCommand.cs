using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Rl;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary>
/// <c>#!rl icepop ...</c>: the twin of <see cref="IcePopExperiment.RunAsync"/> (and <c>toolkit rl experiment
/// icepop</c>): vanilla GRPO, TIS and IcePop from low-precision rollouts and fp32 rollouts as the reference, over
/// several seeds; the charts update while it runs (one line per run), then the verdicts and the per-correction means.
/// </summary>
public sealed class RlIcePopCommand : OptionsMagicCommand<IcePopExperimentOptions>
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("icepop",
            "The IcePop experiment: vanilla GRPO, TIS and IcePop on one MoE policy from low-precision rollouts, fp32 " +
                "rollouts as the reference, over several seeds; which runs degraded.", new IcePopExperimentOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "rl icepop");

    internal static async Task HandleAsync(RlIcePopCommand command, KernelInvocationContext context)
    {
        var options = command.Bind(new(), "rl icepop");
        var points = new Collector<(string Run, MetricPoint Point)>();
        var job = IcePopExperiment.RunAsync(options, points, context.CancellationToken);
        var result = await LiveDisplay.RunAsync(context, job, () => RlCharts.Live(points.Snapshot()),
            TimeSpan.FromSeconds(1), points);
        context.DisplayAs(Html.Table(result), "text/html");
        context.Display(IcePopCharts.PerCorrection(result), "text/html");
    }
}
