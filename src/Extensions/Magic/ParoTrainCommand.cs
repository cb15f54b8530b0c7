using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Paro;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro train ...</c>: the twin of <see cref="ParoTrainJob.RunAsync"/> (and <c>toolkit paro train</c>),
/// with live loss, memory and traffic charts.</summary>
public sealed class ParoTrainCommand : OptionsMagicCommand<ParoTrainOptions>
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("train", "Train a model (a GPT preset, a checkpoint or a Hugging Face folder) under one " +
            "strategy; loss, memory and traffic charts update while it runs.", new ParoTrainOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "paro train");

    internal static async Task HandleAsync(ParoTrainCommand command, KernelInvocationContext context)
    {
        var metrics = new Collector<MetricPoint>();
        var options = command.Bind(new(), "paro train");
        var job = ParoTrainJob.RunAsync(options, metrics, context.CancellationToken);
        var title = $"PaRO {options.Plan.Strategy.Code} training on {options.Launch.Ranks} ranks in groups of " +
            $"{options.Launch.GroupSize}: loss, traffic and memory per rank";
        var result = await LiveDisplay.RunAsync(context, job, () => ParoCharts.Live(title, metrics.Snapshot()),
            TimeSpan.FromSeconds(1), metrics);
        context.DisplayAs(Html.Table(result), "text/html");
    }
}
