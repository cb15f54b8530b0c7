using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Comm;
using Toolkit.Runtime;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!collective plan ...</c>: the twin of <see cref="CollectivePlanOptions.Plan"/> (and <c>toolkit
/// collective plan</c>).</summary>
public sealed class CollectivePlanCommand : OptionsMagicCommand<CollectivePlanOptions>
{
    /// <summary>A new directive instance (a directive can belong to one kernel only).</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("plan",
            "Predict all-reduce time of native, ring, hierarchical and HO-Ring against message size and GPU count.",
                new CollectivePlanOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "collective plan");

    internal static Task HandleAsync(CollectivePlanCommand command, KernelInvocationContext context)
    {
        var plan = command.Bind(new(), "collective plan").Plan();
        var t = plan.Topology;
        context.DisplayAs(Html.Table(
            $"{t.Nodes} nodes x {t.RanksPerNode} ranks, {t.NicsPerNode} NIC(s) per node: predicted all-reduce",
            plan.BySize.GroupBy(p => p.Bytes).Select(g => (Units.FormatBytes(g.Key), string.Join(";  ",
                g.Select(p => $"{p.Algorithm} {p.Seconds * 1e3:F2} ms, {p.BusBandwidth / 1e9:F1} GB/s"))))),
                    "text/html");
        context.Display(CollectiveCharts.BandwidthBySize("Predicted bus bandwidth against message size",
            plan.BySize.Select(p => (p.Algorithm, p.Bytes, p.BusBandwidth))), "text/html");
        context.Display(CollectiveCharts.BandwidthByRanks(
            $"Predicted bus bandwidth against GPUs ({Units.FormatBytes(plan.ByNodes[0].Bytes)})", plan.ByNodes),
                "text/html");
        return Task.CompletedTask;
    }
}
