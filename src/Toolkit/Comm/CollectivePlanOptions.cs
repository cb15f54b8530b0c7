namespace Toolkit.Comm;

/// <summary>Options of <c>collective plan</c>: a topology and the sweeps to predict.</summary>
public sealed record CollectivePlanOptions
{
    /// <summary>Nodes (g). Default 4.</summary>
    public int Nodes { get; init; } = 4;
    /// <summary>Ranks per node (m). Default 8.</summary>
    public int RanksPerNode { get; init; } = 8;
    /// <summary>Intra-node bandwidth per rank, a rate (<c>1200gbit</c> = 150 GB/s NVLink). Default 1200gbit.</summary>
    public string IntraBandwidth { get; init; } = "1200gbit";
    /// <summary>Bandwidth of one network interface, a rate. Default 200gbit.</summary>
    public string InterBandwidth { get; init; } = "200gbit";
    /// <summary>Intra-node latency. Default 5us.</summary>
    public string IntraLatency { get; init; } = "5us";
    /// <summary>Inter-node latency. Default 20us.</summary>
    public string InterLatency { get; init; } = "20us";
    /// <summary>Network interfaces per node. Default 8 (one per GPU, as on current training clusters); 1 models a node with a single shared link.</summary>
    public int NicsPerNode { get; init; } = 8;
    /// <summary>Message sizes. Default 1MiB..256MiB.</summary>
    public string Sizes { get; init; } = "1MiB,4MiB,16MiB,64MiB,256MiB";
    /// <summary>Node counts for the scaling sweep (with the same node shape). Default 2,4,8,16 (16 to 128 GPUs with 8 per node).</summary>
    public string NodeCounts { get; init; } = "2,4,8,16";
    /// <summary>Message size of the scaling sweep. Default 256MiB.</summary>
    public string ScalingSize { get; init; } = "256MiB";

    /// <summary>The topology.</summary>
    public Topology ToTopology() => new Topology(Nodes, RanksPerNode, Units.ParseBitRate(IntraBandwidth), Units.ParseBitRate(InterBandwidth),
        Units.ParseDuration(IntraLatency), Units.ParseDuration(InterLatency), NicsPerNode).Validate();

    /// <summary>Runs both sweeps.</summary>
    public CollectivePlan Plan()
    {
        var topology = ToTopology();
        var sizes = Units.ParseList(Sizes, s => (double)Units.ParseBytes(s));
        var nodes = Units.ParseList(NodeCounts, s => int.TryParse(s, out var g) && g > 0 ? g : throw new FormatException($"'{s}' is not a node count."));
        return new CollectivePlan(topology, CollectiveSimulator.SweepSizes(topology, sizes), CollectiveSimulator.SweepNodes(topology, nodes, Units.ParseBytes(ScalingSize)));
    }
}

/// <summary>The simulator's predictions.</summary>
/// <param name="Topology">The machine.</param>
/// <param name="BySize">Every algorithm at every message size.</param>
/// <param name="ByNodes">Every algorithm at every node count.</param>
public sealed record CollectivePlan(Topology Topology, IReadOnlyList<SimulatedPoint> BySize, IReadOnlyList<SimulatedPoint> ByNodes);
