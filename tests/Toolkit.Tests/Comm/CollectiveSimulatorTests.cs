using Toolkit.Comm;
using Toolkit.Runtime;

namespace Toolkit.Tests.Comm;

public sealed class CollectiveSimulatorTests
{
    private static readonly Topology Cluster = new(Nodes: 4, RanksPerNode: 8, IntraBandwidth: 150e9,
        NicBandwidth: 25e9, IntraLatency: 5e-6, InterLatency: 20e-6, NicsPerNode: 8);

    [Fact]
    public void UnpipelinedHoRing_IsTheBriefsFormula()
    {
        const double s = 256 << 20;
        int m = 8, g = 4;
        var expected = 2 * (m - 1) * 5e-6 + 2 * (g - 1) * 20e-6 + 2.0 * (m - 1) / m * s / 150e9
            + 2.0 * (g - 1) / g * s / (m * 25e9);
        Assert.Equal(expected, CollectiveSimulator.HoRingUnpipelinedSeconds(Cluster, s), 12);
    }

    [Fact]
    public void FlatRing_IsPacedByItsInterNodeHop()
    {
        const double s = 64 << 20;
        var n = 32;
        Assert.Equal(2 * (n - 1) * (20e-6 + s / n / 25e9),
            CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithm.Ring, Cluster, s), 12);
    }

    [Fact]
    public void HoRing_BeatsTheRingOnLargeMessages_WhenEveryRankHasItsNic_AndPipeliningHelps()
    {
        const double s = 256 << 20;
        var ring = CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithm.Ring, Cluster, s);
        var pipelined = CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithm.HoRing, Cluster, s);
        Assert.True(pipelined < CollectiveSimulator.HoRingUnpipelinedSeconds(Cluster, s));
        Assert.True(ring / pipelined > 2);
        Assert.Equal(2.0 * 31 / 32 * s / pipelined, CollectiveSimulator.BusBandwidth(32, s, pipelined), 6);
    }

    [Fact]
    public void SingleNode_EveryAlgorithmIsTheRing()
    {
        var node = Cluster with { Nodes = 1 };
        var ring = CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithm.Ring, node, 1 << 20);
        Assert.Equal(ring, CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithm.HoRing, node, 1 << 20));
        Assert.Equal(ring, CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithm.Hierarchical, node, 1 << 20));
    }

    [Theory]
    [InlineData("64MiB", 64L << 20)]
    [InlineData("1KiB", 1024L)]
    [InlineData("2GB", 2_000_000_000L)]
    [InlineData("4096", 4096L)]
    public void Units_ParseSizes(string text, long bytes) => Assert.Equal(bytes, Units.ParseBytes(text));

    [Fact]
    public void Units_ParseRatesAndDurations_AndRejectNonsense()
    {
        Assert.Equal(125e6, Units.ParseBitRate("1gbit"));
        Assert.Equal(0.2e-3, Units.ParseDuration("0.2ms"), 12);
        Assert.Contains("unknown rate unit", Assert.Throws<FormatException>(() => Units.ParseBitRate("1gbps")).Message);
        Assert.Contains("is not a size", Assert.Throws<FormatException>(() => Units.ParseBytes("lots")).Message);
        Assert.Contains("native, ring, hierarchical, ho-ring",
            Assert.Throws<ArgumentException>(() => CollectiveAlgorithms.Parse("tree")).Message);
    }
}
