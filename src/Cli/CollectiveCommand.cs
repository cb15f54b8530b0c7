using System.CommandLine;
using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Paro;

namespace Toolkit.Cli;

/// <summary><c>toolkit collective plan</c>: the alpha-beta simulator of all-reduce algorithms.</summary>
internal static class CollectiveCommand
{
    public static Command Create()
    {
        var d = new CollectivePlanOptions();
        var nodes = new Option<int>("--nodes") { Description = "Nodes (g).", DefaultValueFactory = _ => d.Nodes };
        var perNode = new Option<int>("--ranks-per-node") { Description = "Ranks per node (m).", DefaultValueFactory = _ => d.RanksPerNode };
        var intraBandwidth = new Option<string>("--intra-bandwidth") { Description = "Per-rank intra-node rate, e.g. 1200gbit.", DefaultValueFactory = _ => d.IntraBandwidth };
        var interBandwidth = new Option<string>("--inter-bandwidth") { Description = "Rate of one network interface, e.g. 200gbit or 1gbit.", DefaultValueFactory = _ => d.InterBandwidth };
        var intraLatency = new Option<string>("--intra-latency") { Description = "e.g. 5us.", DefaultValueFactory = _ => d.IntraLatency };
        var interLatency = new Option<string>("--inter-latency") { Description = "e.g. 20us or 0.2ms.", DefaultValueFactory = _ => d.InterLatency };
        var nics = new Option<int>("--nics-per-node") { Description = "Network interfaces per node.", DefaultValueFactory = _ => d.NicsPerNode };
        var sizes = new Option<string>("--sizes") { Description = "Message sizes, e.g. 1MiB,64MiB.", DefaultValueFactory = _ => d.Sizes };
        var nodeCounts = new Option<string>("--node-counts") { Description = "Node counts of the scaling sweep.", DefaultValueFactory = _ => d.NodeCounts };
        var json = new Option<FileInfo?>("--json") { Description = "Write the predictions as JSON." };
        var plan = new Command("plan", "Predict all-reduce time of native, ring, hierarchical and HO-Ring against message size and node count.")
            { nodes, perNode, intraBandwidth, interBandwidth, intraLatency, interLatency, nics, sizes, nodeCounts, json };
        plan.SetAction(parse =>
        {
            var result = new CollectivePlanOptions
            {
                Nodes = parse.GetValue(nodes), RanksPerNode = parse.GetValue(perNode), IntraBandwidth = parse.GetValue(intraBandwidth)!,
                InterBandwidth = parse.GetValue(interBandwidth)!, IntraLatency = parse.GetValue(intraLatency)!, InterLatency = parse.GetValue(interLatency)!,
                NicsPerNode = parse.GetValue(nics), Sizes = parse.GetValue(sizes)!, NodeCounts = parse.GetValue(nodeCounts)!,
            }.Plan();
            Console.WriteLine($"{result.Topology.Nodes} nodes x {result.Topology.RanksPerNode} ranks; predicted all-reduce time (ms) and bus bandwidth (GB/s)");
            foreach (var size in result.BySize.GroupBy(p => p.Bytes))
                Console.WriteLine($"{Units.FormatBytes(size.Key),10}  " + string.Join("  ", size.Select(p => $"{p.Algorithm} {p.Seconds * 1e3:F2} ms ({p.BusBandwidth / 1e9:F1} GB/s)")));
            Console.WriteLine("scaling at the largest size:");
            foreach (var g in result.ByNodes.GroupBy(p => p.Nodes))
                Console.WriteLine($"{g.Key * result.Topology.RanksPerNode,5} GPUs  " + string.Join("  ", g.Select(p => $"{p.Algorithm} {p.BusBandwidth / 1e9:F1} GB/s")));
            if (parse.GetValue(json) is { } file) File.WriteAllText(file.FullName, JsonSerializer.Serialize(result, ParoTrainJob.Json));
            return 0;
        });
        return new Command("collective", "Collective algorithms: simulator.") { plan };
    }
}
