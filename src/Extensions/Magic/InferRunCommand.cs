using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.BatchInference;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!infer</c> alone: lists the subcommands.</summary>
public sealed class InferHelpCommand : KernelDirectiveCommand;

/// <summary>
/// <c>#!infer run --input FILE ...</c>: the twin of <see cref="InferJob.RunAsync"/> (and <c>toolkit infer run</c>):
/// progress, throughput, workers, per-stage busy time and queue depth update while it runs; cancelling the cell stops
/// the workers (they drain what they hold) and the job can be resumed with <c>toolkit infer resume</c>.
/// </summary>
public sealed class InferRunCommand : OptionsMagicCommand<InferJobOptions>
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("run",
            "Run a batch-inference job (exactly-once output, resumable, pipelined workers); live progress, " +
                "throughput and per-stage charts.", new InferJobOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "infer run");

    internal static async Task HandleAsync(InferRunCommand command, KernelInvocationContext context)
    {
        var snapshots = new Collector<InferStatus>();
        var options = command.Bind(new(), "infer run");
        var job = InferJob.RunAsync(options, snapshots, context.CancellationToken);
        var title = $"Batch inference of {Path.GetFileName(options.Data.Input)}: progress, throughput, pipeline stages";
        var result = await LiveDisplay.RunAsync(context, job, () => InferCharts.Live(snapshots.Snapshot(), title),
            TimeSpan.FromSeconds(1));
        context.DisplayAs(Html.Table(result), "text/html");
    }
}
