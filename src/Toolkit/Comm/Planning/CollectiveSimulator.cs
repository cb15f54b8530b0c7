namespace Toolkit.Comm;

/// <summary>A machine for the collective simulator: g nodes of m ranks.</summary>
/// <param name="Nodes">g.</param>
/// <param name="RanksPerNode">m.</param>
/// <param name="IntraBandwidth">B': bytes/s one rank sends to a rank of its node (NVLink, shared memory).</param>
/// <param name="NicBandwidth">Bytes/s of one network interface of a node.</param>
/// <param name="IntraLatency">α': seconds per message inside a node.</param>
/// <param name="InterLatency">α: seconds per message between nodes.</param>
/// <param name="NicsPerNode">Network interfaces per node; concurrent flows leaving a node share them.</param>
public sealed record Topology(int Nodes, int RanksPerNode, double IntraBandwidth, double NicBandwidth,
    double IntraLatency, double InterLatency, int NicsPerNode = 1)
{
    /// <summary>n = g·m.</summary>
    public int Ranks => Nodes * RanksPerNode;

    /// <summary>Bandwidth of each of <paramref name="flows"/> concurrent flows leaving one node.</summary>
    public double FlowBandwidth(int flows) => Math.Min(NicBandwidth, NicBandwidth * NicsPerNode / Math.Max(1, flows));

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid value.</summary>
    public Topology Validate()
    {
        if (Nodes < 1) throw new ArgumentOutOfRangeException(nameof(Nodes), Nodes, "must be at least 1");
        if (RanksPerNode < 1) throw new ArgumentOutOfRangeException(nameof(RanksPerNode), RanksPerNode,
            "must be at least 1");
        if (!(IntraBandwidth > 0)) throw new ArgumentOutOfRangeException(nameof(IntraBandwidth), IntraBandwidth,
            "must be positive");
        if (!(NicBandwidth > 0)) throw new ArgumentOutOfRangeException(nameof(NicBandwidth), NicBandwidth,
            "must be positive");
        if (IntraLatency < 0 || InterLatency < 0) throw new ArgumentOutOfRangeException(nameof(InterLatency),
            "latencies must not be negative");
        if (NicsPerNode < 1) throw new ArgumentOutOfRangeException(nameof(NicsPerNode), NicsPerNode,
            "must be at least 1");
        return this;
    }
}

/// <summary>
/// Alpha-beta costs of all-reduce algorithms on a <see cref="Topology"/> (PaRO §3.3 and the brief's
/// formulas), for message-size and node-count sweeps.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Ring (rank order): 2(n-1) synchronous steps of S/n; each step is paced by its slowest hop,
/// the one flow per node that leaves the node: 2(n-1)·max(α' + S/(nB'), α + S/(nB)).</item>
/// <item>HO-Ring (the authors' version, phases separated): 2(m-1)α' + 2(m-1)/m·S/B' + 2(g-1)α +
/// 2(g-1)/g·S/(m·B_m), where B_m is a flow's share when m rings leave each node at once.</item>
/// <item>HO-Ring pipelined (this toolkit): the intra phases and the inter phase run concurrently on
/// C chunks: max(T_intra, T_inter) + min(T_intra, T_inter)/C, with per-chunk latencies.</item>
/// <item>Leader-based hierarchical: intra reduce-scatter, gather to the leader, leaders' ring on all
/// of S (one flow per node), pipelined broadcast inside the node.</item>
/// <item>Native (MPICH without topology awareness): ring bandwidth term with recursive-doubling
/// latency, 2·log2(n)·α. This is a model of a library we do not control; measure it.</item>
/// </list>
/// </remarks>
public static class CollectiveSimulator
{
    /// <summary>Predicted seconds of one all-reduce of <paramref name="bytes"/> bytes.</summary>
    /// <param name="algorithm">The algorithm.</param>
    /// <param name="topology">The machine.</param>
    /// <param name="bytes">Message size S.</param>
    /// <param name="chunkBytes">HO-Ring's pipeline chunk (default 1 MiB, as
    /// <see cref="Communicator.PipelineChunkBytes"/>).</param>
    public static double AllReduceSeconds(CollectiveAlgorithm algorithm, Topology topology, double bytes,
        double chunkBytes = 1 << 20)
    {
        var t = topology.Validate();
        int n = t.Ranks, m = t.RanksPerNode, g = t.Nodes;
        if (n == 1) return 0;
        return algorithm switch
        {
            CollectiveAlgorithm.Ring => FlatRing(t, bytes),
            CollectiveAlgorithm.Native => FlatRing(t, bytes) - 2 * (n - 1) * Math.Max(t.IntraLatency,
                g > 1 ? t.InterLatency : 0)
                                          + 2 * Math.Ceiling(Math.Log2(n)) * (g > 1 ? t.InterLatency : t.IntraLatency),
            CollectiveAlgorithm.Hierarchical => g == 1 || m == 1 ? FlatRing(t, bytes) : Leader(t, bytes),
            _ => g == 1 || m == 1 ? FlatRing(t, bytes) : HoRing(t, bytes, HoRingChunks(bytes, chunkBytes)),
        };
    }

    /// <summary>The authors' HO-Ring (no pipelining), for comparison with their reported numbers.</summary>
    public static double HoRingUnpipelinedSeconds(Topology topology, double bytes)
    {
        var t = topology.Validate();
        return t.Nodes == 1 || t.RanksPerNode == 1 ? FlatRing(t, bytes) : Intra(t, bytes, 1) + Inter(t, bytes, 1);
    }

    /// <summary>Bus bandwidth of an all-reduce (NCCL-tests convention): 2(n-1)/n·S / time.</summary>
    public static double BusBandwidth(int ranks, double bytes,
        double seconds) => seconds <= 0 ? 0 : 2.0 * (ranks - 1) / ranks * bytes / seconds;

    /// <summary>Predictions for every algorithm at every size.</summary>
    public static IReadOnlyList<SimulatedPoint> SweepSizes(Topology topology, IEnumerable<double> sizes) =>
        [.. from s in sizes from a in Enum.GetValues<CollectiveAlgorithm>() select Point(a, topology, s)];

    /// <summary>Predictions for every algorithm as the node count grows (same node shape).</summary>
    public static IReadOnlyList<SimulatedPoint> SweepNodes(Topology topology, IEnumerable<int> nodes, double bytes) =>
        [.. from g in nodes from a in Enum.GetValues<CollectiveAlgorithm>() select Point(a,
            topology with { Nodes = g }, bytes)];

    private static SimulatedPoint Point(CollectiveAlgorithm a, Topology t, double s)
    {
        var seconds = AllReduceSeconds(a, t, s);
        return new SimulatedPoint(CollectiveAlgorithms.Name(a), t.Nodes, t.RanksPerNode, s, seconds,
            BusBandwidth(t.Ranks, s, seconds));
    }

    private static double HoRingChunks(double bytes, double chunkBytes) => Math.Clamp(Math.Floor(bytes / chunkBytes),
        1, Comm.HoRing.MaxChunks);

    private static double FlatRing(Topology t, double s)
    {
        var n = t.Ranks;
        var intra = t.IntraLatency + s / n / t.IntraBandwidth;
        var inter = t.Nodes > 1 ? t.InterLatency + s / n / t.FlowBandwidth(1) : 0;
        return 2 * (n - 1) * Math.Max(intra, inter);
    }

    /// <summary>Intra reduce-scatter plus all-gather on S, as <paramref name="chunks"/> messages each.</summary>
    private static double Intra(Topology t, double s, double chunks) =>
        2 * (t.RanksPerNode - 1) * (chunks * t.IntraLatency + s / t.RanksPerNode / t.IntraBandwidth);

    /// <summary>m concurrent inter-node rings, each an all-reduce of S/m.</summary>
    private static double Inter(Topology t, double s, double chunks) =>
        2 * (t.Nodes - 1) * (chunks * t.InterLatency + s / t.RanksPerNode / t.Nodes / t.FlowBandwidth(t.RanksPerNode));

    private static double HoRing(Topology t, double s, double chunks)
    {
        double intra = Intra(t, s, chunks), inter = Inter(t, s, chunks);
        return Math.Max(intra, inter) + Math.Min(intra, inter) / chunks;
    }

    private static double Leader(Topology t, double s)
    {
        int m = t.RanksPerNode, g = t.Nodes;
        var reduce = (m - 1) * (t.IntraLatency + s / m / t.IntraBandwidth);
        var gather = t.IntraLatency + (m - 1) * s / m / t.IntraBandwidth;
        var leaders = 2 * (g - 1) * (t.InterLatency + s / g / t.FlowBandwidth(1));
        var broadcast = (m - 1) * t.IntraLatency + s / t.IntraBandwidth + (m - 2) * Math.Min(s,
            1 << 20) / t.IntraBandwidth;
        return reduce + gather + leaders + broadcast;
    }
}

/// <summary>One predicted all-reduce.</summary>
/// <param name="Algorithm">native, ring, hierarchical or ho-ring.</param>
/// <param name="Nodes">g.</param>
/// <param name="RanksPerNode">m.</param>
/// <param name="Bytes">Message size.</param>
/// <param name="Seconds">Predicted time.</param>
/// <param name="BusBandwidth">Bytes/s, NCCL-tests convention.</param>
public sealed record SimulatedPoint(string Algorithm, int Nodes, int RanksPerNode, double Bytes, double Seconds,
    double BusBandwidth);
