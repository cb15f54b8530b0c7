using Toolkit.Comm;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Comm;

/// <summary>
/// build/emulate-cluster.sh, really started through the job host: 2 nodes (network namespaces on an isolated bridge,
/// links shaped to 1 Gbit/s) of 2 ranks each, every algorithm's collectives checked against the reference. Needs root
/// (CI runs as root); the non-root path is checked for its message.
/// </summary>
[Collection(EmulatedClusterCollection.Name)]
public sealed class EmulatedClusterTests
{
    private static string Script => Path.Combine(Repository.Root, "build", "emulate-cluster.sh");

    [Theory]
    [InlineData("ring")]
    [InlineData("ho-ring")]
    [InlineData("hierarchical")]
    [InlineData("native")]
    public async Task TwoNodesOfTwo_EveryCollectiveMatchesTheReference(string algorithm)
    {
        using var runs = new TemporaryFolder("toolkit-emulated-");
        var records = await JobHost.RunAsync(new CollectiveSelfTestJob(), new CollectiveSelfTestOptions
        {
            Launch = new() { Launcher = Launcher.Mpi, Ranks = 4, GroupSize = 2, Emulate = "2x2",
                InterBandwidth = "1gbit", RunsDirectory = runs.Path },
            Algorithm = CollectiveAlgorithms.Parse(algorithm),
        });
        ProbeReference.Check(records, 4, 2, checkBytes: algorithm is "ring" or "native");
        // Traffic between nodes went through the emulated links (the script reports each node's eth0 counters).
        var output = File.ReadAllText(Directory.GetFiles(runs.Path, "launcher.log",
            SearchOption.AllDirectories).Single());
        Assert.Contains("node1 eth0", output);
        // Its namespaces are gone (the script names them after its PID and prints the prefix; other tests' clusters may
        // be up).
        var prefix = output.Split('\n').Single(l => l.StartsWith("emulate-cluster: namespaces ",
            StringComparison.Ordinal))["emulate-cluster: namespaces ".Length..].Trim();
        Assert.DoesNotContain(Repository.Run("ip", ["netns", "list"], TimeSpan.FromSeconds(10)).Output.Split('\n'),
            l => l.StartsWith(prefix + "sw", StringComparison.Ordinal) || l.StartsWith(prefix + "n",
                StringComparison.Ordinal));
    }

    /// <summary>
    /// Multi-rail: with two shaped links per node, the local-index-1 ranks' HO-Ring traffic crosses nodes on eth1 and
    /// the local-index-0 ranks' on eth0, each rail carrying about half; the simulator is told the same topology.
    /// </summary>
    [Fact]
    public async Task TwoLinksPerNode_HoRingUsesBothRails()
    {
        using var runs = new TemporaryFolder("toolkit-rails-");
        const long size = 8 << 20;
        var report = await CollectiveBenchJob.RunAsync(new CollectiveBenchOptions
        {
            Launch = new() { Launcher = Launcher.Mpi, Ranks = 4, GroupSize = 2, Emulate = "2x2", NicsPerNode = 2,
                InterBandwidth = "1gbit", RunsDirectory = runs.Path },
            Sizes = "8MiB",
            Algorithms = "ho-ring",
            Repeats = 1,
        });
        Assert.Equal(2, report.Topology.NicsPerNode);
        // ip -s link prints RX then TX per link: "node0 eth1 <bytes> <packets> ...".
        var sent = report.Topology.LinkCounters.Select(l => l.Split(' ',
            StringSplitOptions.RemoveEmptyEntries)).Where((_, i) => i % 2 == 1)
            .ToDictionary(f => $"{f[0]} {f[1]}", f => long.Parse(f[2],
                System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(["node0 eth0", "node0 eth1", "node1 eth0", "node1 eth1"], sent.Keys.Order());
        // Two calls (warm-up + 1) of 2(g-1)/g * S/m = S/2 per rank: S per rail, plus headers; a rail that carried
        // nothing fails.
        foreach (var (link, bytes) in sent) Assert.True(bytes >= size,
            $"{link} sent {bytes} bytes; HO-Ring's ring of its local index should have sent at least {size}");
        Assert.True(report.Results.Single().PredictedSeconds < CollectiveSimulator.HoRingUnpipelinedSeconds(
            new Topology(2, 2, report.Topology.MeasuredIntraBandwidth, 125e6, report.Topology.MeasuredIntraLatency,
                report.Topology.MeasuredIntraLatency), size),
            "the prediction must use both links");
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void WithoutRoot_ExplainsWhatItNeeds()
    {
        // A copy the unprivileged user can read (the checkout may live in a private folder).
        var copy = Path.Combine(Path.GetTempPath(), $"toolkit-emulate-{Guid.NewGuid():N}.sh");
        File.Copy(Script, copy);
        File.SetUnixFileMode(copy,
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        try
        {
            var (code, output) = Repository.Run("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups",
                "bash", copy, "--nodes", "2", "--", "true"],
                TimeSpan.FromSeconds(30), workingDirectory: Path.GetTempPath());
            Assert.True(code == 77, $"expected exit 77, got {code}: {output}");
            Assert.Contains("needs root", output);
        }
        finally
        {
            File.Delete(copy);
        }
    }
}
