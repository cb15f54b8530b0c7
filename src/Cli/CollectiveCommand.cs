using System.CommandLine;
using Toolkit.Comm;
using Toolkit.Runtime;

namespace Toolkit.Cli;

/// <summary><c>toolkit collective plan</c>: the alpha-beta simulator of all-reduce algorithms.</summary>
internal static class CollectiveCommand
{
    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Write the predictions as JSON." };
        var plan = new Command("plan",
            "Predict all-reduce time of native, ring, hierarchical and HO-Ring against message size and node " +
                "count.") { json };
        var options = new CliOptions<CollectivePlanOptions>(plan, new(), "collective plan");
        plan.SetAction(parse =>
        {
            var result = options.Bind(parse).Plan();
            Console.WriteLine(
                $"{result.Topology.Nodes} nodes x {result.Topology.RanksPerNode} ranks; predicted all-reduce time " +
                    $"(ms) and bus bandwidth (GB/s)");
            foreach (var size in result.BySize.GroupBy(p => p.Bytes))
                Console.WriteLine($"{Units.FormatBytes(size.Key),10}  " + string.Join("  ",
                    size.Select(p => $"{p.Algorithm} {p.Seconds * 1e3:F2} ms ({p.BusBandwidth / 1e9:F1} GB/s)")));
            Console.WriteLine("scaling at the scaling size:");
            foreach (var g in result.ByNodes.GroupBy(p => p.Nodes))
                Console.WriteLine($"{g.Key * result.Topology.RanksPerNode,5} GPUs  " + string.Join("  ",
                    g.Select(p => $"{p.Algorithm} {p.BusBandwidth / 1e9:F1} GB/s")));
            Facts.WriteJson(parse.GetValue(json), result);
            return 0;
        });
        return new Command("collective", "Collective algorithms: simulator.") { plan };
    }
}
