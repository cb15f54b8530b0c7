using Toolkit.Options;
using Toolkit.Runtime;

namespace Toolkit.Comm;

/// <summary>Options of <c>collective plan</c>: a topology and the sweeps to predict.</summary>
public sealed record CollectivePlanOptions
{
    /// <summary>Nodes (g). Default 4.</summary>
    [Option("Nodes (g).")]
    public int Nodes { get; init; } = 4;
    /// <summary>Ranks per node (m). Default 8.</summary>
    [Option("Ranks per node (m).")]
    public int RanksPerNode { get; init; } = 8;
    /// <summary>Intra-node bandwidth per rank, a rate (<c>1200gbit</c> = 150 GB/s NVLink). Default 1200gbit.</summary>
    [Option("Per-rank intra-node rate, e.g. 1200gbit (150 GB/s NVLink).")]
    public string IntraBandwidth { get; init; } = "1200gbit";
    /// <summary>Bandwidth of one network interface, a rate. Default 200gbit.</summary>
    [Option("Rate of one network interface, e.g. 200gbit or 1gbit.")]
    public string InterBandwidth { get; init; } = "200gbit";
    /// <summary>Intra-node latency. Default 5us.</summary>
    [Option("Intra-node latency, e.g. 5us.")]
    public string IntraLatency { get; init; } = "5us";
    /// <summary>Inter-node latency. Default 20us.</summary>
    [Option("Inter-node latency, e.g. 20us or 0.2ms.")]
    public string InterLatency { get; init; } = "20us";
    /// <summary>Network interfaces per node. Default 8 (one per GPU, as on current training clusters); 1 models a node
    /// with a single shared link.</summary>
    [Option("Network interfaces per node (8: one per GPU; 1: one shared link).")]
    public int NicsPerNode { get; init; } = 8;
    /// <summary>Message sizes. Default 1MiB..256MiB.</summary>
    [Option("Message sizes of the size sweep, e.g. 1MiB,64MiB.")]
    public string Sizes { get; init; } = "1MiB,4MiB,16MiB,64MiB,256MiB";
    /// <summary>Node counts for the scaling sweep (with the same node shape). Default 2,4,8,16 (16 to 128 GPUs with 8
    /// per node).</summary>
    [Option("Node counts of the scaling sweep.")]
    public string NodeCounts { get; init; } = "2,4,8,16";
    /// <summary>Message size of the scaling sweep. Default 256MiB.</summary>
    [Option("Message size of the scaling sweep.")]
    public string ScalingSize { get; init; } = "256MiB";

    /// <summary>The topology.</summary>
    public Topology ToTopology() => new Topology(Nodes, RanksPerNode,
        Units.Option(nameof(IntraBandwidth), IntraBandwidth, Units.ParseBitRate), Units.Option(nameof(InterBandwidth),
            InterBandwidth, Units.ParseBitRate),
        Units.Option(nameof(IntraLatency), IntraLatency, Units.ParseDuration), Units.Option(nameof(InterLatency),
            InterLatency, Units.ParseDuration), NicsPerNode).Validate();

    /// <summary>Runs both sweeps.</summary>
    public CollectivePlan Plan()
    {
        var topology = ToTopology();
        var sizes = Units.Option(nameof(Sizes), Sizes, v => Units.ParseList(v, s => (double)Units.ParseBytes(s)));
        var nodes = Units.Option(nameof(NodeCounts), NodeCounts, v => Units.ParseList(v, s => int.TryParse(s,
            out var g) && g > 0 ? g : throw new FormatException($"'{s}' is not a node count.")));
        return new CollectivePlan(topology, CollectiveSimulator.SweepSizes(topology, sizes),
            CollectiveSimulator.SweepNodes(topology, nodes, Units.Option(nameof(ScalingSize), ScalingSize,
                Units.ParseBytes)));
    }
}

/// <summary>The simulator's predictions.</summary>
/// <param name="Topology">The machine.</param>
/// <param name="BySize">Every algorithm at every message size.</param>
/// <param name="ByNodes">Every algorithm at every node count.</param>
public sealed record CollectivePlan(Topology Topology, IReadOnlyList<SimulatedPoint> BySize,
    IReadOnlyList<SimulatedPoint> ByNodes);
