using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Rl;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!rl</c> alone: lists the subcommands.</summary>
public sealed class RlHelpCommand : KernelDirectiveCommand;

/// <summary>
/// <c>#!rl train ... [--compare none,tis,icepop]</c>: the twin of <see cref="RlCompare.RunAsync"/> (and <c>toolkit rl
/// train</c>): reward, held-out accuracy, gradient norm, |Δlog p|, KL and masked-fraction charts update while it runs,
/// one line per run.
/// </summary>
public sealed class RlTrainCommand : OptionsMagicCommand<RlRunOptions>
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("train",
            "Warm-start a policy (a GPT preset or a Hugging Face folder) on a verifiable task and train it with GRPO " +
                "(IcePop, TIS, MIS or none) from a separate rollout engine; live charts.", new RlRunOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "rl train");

    internal static async Task HandleAsync(RlTrainCommand command, KernelInvocationContext context)
    {
        var options = command.Bind(new(), "rl train");
        var points = new Collector<(string Run, MetricPoint Point)>();
        var job = RlCompare.RunAsync(options, points, context.CancellationToken);
        var results = await LiveDisplay.RunAsync(context, job, () => RlCharts.Live(points.Snapshot()),
            TimeSpan.FromSeconds(1), points);
        foreach (var result in results) context.DisplayAs(Html.Table(result), "text/html");
    }
}
