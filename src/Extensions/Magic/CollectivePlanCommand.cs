using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Comm;
using Toolkit.Reporting;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!collective plan ...</c>: the twin of <see cref="CollectivePlanOptions.Plan"/> (and <c>toolkit collective plan</c>).</summary>
public sealed class CollectivePlanCommand : KernelDirectiveCommand
{
    private static readonly CollectivePlanOptions Defaults = new();

    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() => new("plan", "Predict all-reduce time of native, ring, hierarchical and HO-Ring against message size and GPU count.")
    {
        Parameters =
        {
            new KernelDirectiveParameter("--nodes", $"Nodes (default {Defaults.Nodes}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--ranks-per-node", $"Ranks per node (default {Defaults.RanksPerNode}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--intra-bandwidth", $"Per-rank intra-node rate (default {Defaults.IntraBandwidth})."),
            new KernelDirectiveParameter("--inter-bandwidth", $"Rate of one network interface (default {Defaults.InterBandwidth})."),
            new KernelDirectiveParameter("--intra-latency", $"Default {Defaults.IntraLatency}."),
            new KernelDirectiveParameter("--inter-latency", $"Default {Defaults.InterLatency}."),
            new KernelDirectiveParameter("--nics-per-node", $"Network interfaces per node (default {Defaults.NicsPerNode}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--sizes", $"Message sizes (default {Defaults.Sizes})."),
            new KernelDirectiveParameter("--node-counts", $"Node counts of the scaling sweep (default {Defaults.NodeCounts})."),
        },
    };

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--nodes</c>.</summary>
    public int Nodes { get; set; } = Defaults.Nodes;
    /// <summary><c>--ranks-per-node</c>.</summary>
    public int RanksPerNode { get; set; } = Defaults.RanksPerNode;
    /// <summary><c>--intra-bandwidth</c>.</summary>
    public string IntraBandwidth { get; set; } = Defaults.IntraBandwidth;
    /// <summary><c>--inter-bandwidth</c>.</summary>
    public string InterBandwidth { get; set; } = Defaults.InterBandwidth;
    /// <summary><c>--intra-latency</c>.</summary>
    public string IntraLatency { get; set; } = Defaults.IntraLatency;
    /// <summary><c>--inter-latency</c>.</summary>
    public string InterLatency { get; set; } = Defaults.InterLatency;
    /// <summary><c>--nics-per-node</c>.</summary>
    public int NicsPerNode { get; set; } = Defaults.NicsPerNode;
    /// <summary><c>--sizes</c>.</summary>
    public string Sizes { get; set; } = Defaults.Sizes;
    /// <summary><c>--node-counts</c>.</summary>
    public string NodeCounts { get; set; } = Defaults.NodeCounts;

    internal static Task HandleAsync(CollectivePlanCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!collective plan", Options);
        var plan = new CollectivePlanOptions
        {
            Nodes = command.Nodes, RanksPerNode = command.RanksPerNode, IntraBandwidth = command.IntraBandwidth, InterBandwidth = command.InterBandwidth,
            IntraLatency = command.IntraLatency, InterLatency = command.InterLatency, NicsPerNode = command.NicsPerNode, Sizes = command.Sizes, NodeCounts = command.NodeCounts,
        }.Plan();
        var t = plan.Topology;
        context.DisplayAs(Html.Table($"{t.Nodes} nodes x {t.RanksPerNode} ranks, {t.NicsPerNode} NIC(s) per node: predicted all-reduce",
            plan.BySize.GroupBy(p => p.Bytes).Select(g => (Units.FormatBytes(g.Key), string.Join(";  ", g.Select(p => $"{p.Algorithm} {p.Seconds * 1e3:F2} ms, {p.BusBandwidth / 1e9:F1} GB/s"))))), "text/html");
        context.Display(CollectiveCharts.BandwidthBySize("Predicted bus bandwidth against message size", plan.BySize.Select(p => (p.Algorithm, p.Bytes, p.BusBandwidth))), "text/html");
        context.Display(CollectiveCharts.BandwidthByRanks($"Predicted bus bandwidth against GPUs ({Units.FormatBytes(plan.ByNodes[0].Bytes)})", plan.ByNodes), "text/html");
        return Task.CompletedTask;
    }
}
