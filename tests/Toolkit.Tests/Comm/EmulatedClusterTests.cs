using Toolkit.Comm;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Comm;

/// <summary>
/// build/emulate-cluster.sh, really started through the job host: 2 nodes (network namespaces on an isolated bridge, links
/// shaped to 1 Gbit/s) of 2 ranks each, every algorithm's collectives checked against the reference.
/// Needs root (CI runs as root); the non-root path is checked for its message.
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
            Launch = new() { Launcher = Launcher.Mpi, Ranks = 4, GroupSize = 2, Emulate = "2x2", InterBandwidth = "1gbit", RunsDirectory = runs.Path },
            Algorithm = CollectiveAlgorithms.Parse(algorithm),
        });
        ProbeReference.Check(records, 4, 2, checkBytes: algorithm is "ring" or "native");
        // Traffic between nodes went through the emulated links (the script reports each node's eth0 counters).
        var output = File.ReadAllText(Directory.GetFiles(runs.Path, "launcher.log", SearchOption.AllDirectories).Single());
        Assert.Contains("node1 eth0", output);
        // Its namespaces are gone (the script names them after its PID and prints the prefix; other tests' clusters may be up).
        var prefix = output.Split('\n').Single(l => l.StartsWith("emulate-cluster: namespaces ", StringComparison.Ordinal))["emulate-cluster: namespaces ".Length..].Trim();
        Assert.DoesNotContain(Repository.Run("ip", ["netns", "list"], TimeSpan.FromSeconds(10)).Output.Split('\n'), l => l.StartsWith(prefix + "sw", StringComparison.Ordinal) || l.StartsWith(prefix + "n", StringComparison.Ordinal));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void WithoutRoot_ExplainsWhatItNeeds()
    {
        // A copy the unprivileged user can read (the checkout may live in a private folder).
        var copy = Path.Combine(Path.GetTempPath(), $"toolkit-emulate-{Guid.NewGuid():N}.sh");
        File.Copy(Script, copy);
        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        try
        {
            var (code, output) = Repository.Run("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "bash", copy, "--nodes", "2", "--", "true"],
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
