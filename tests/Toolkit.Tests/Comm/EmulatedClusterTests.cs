using Toolkit.Comm;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Comm;

/// <summary>
/// build/emulate-cluster.sh, really started: 2 nodes (network namespaces on an isolated bridge, links
/// shaped to 1 Gbit/s) of 2 ranks each, every algorithm's collectives checked against the reference.
/// Needs root (CI runs as root); the non-root path is checked for its message.
/// </summary>
public sealed class EmulatedClusterTests
{
    private static string Script => Path.Combine(Repository.Root, "build", "emulate-cluster.sh");

    [Theory]
    [InlineData("ring")]
    [InlineData("ho-ring")]
    [InlineData("hierarchical")]
    [InlineData("native")]
    public void TwoNodesOfTwo_EveryCollectiveMatchesTheReference(string algorithm)
    {
        var dir = Directory.CreateTempSubdirectory("toolkit-emulated-");
        try
        {
            var (code, output) = Repository.Run("bash", [Script, "--nodes", "2", "--ranks-per-node", "2", "--inter-bandwidth", "1gbit", "--verbose", "--",
                "dotnet", Repository.CliDll, "selftest", "collectives", "--out", dir.FullName, "--group-size", "2", "--algorithm", algorithm], TimeSpan.FromMinutes(3));
            Assert.True(code == 0, $"emulate-cluster exited with {code}:\n{output}");
            var records = Enumerable.Range(0, 4).Select(r => CollectiveProbe.Read(Path.Combine(dir.FullName, $"rank-{r}.json"))).ToList();
            ProbeReference.Check(records, 4, 2, checkBytes: algorithm is "ring" or "native");
            // Traffic between nodes went through the emulated links (the script reports each node's eth0 counters).
            Assert.Contains("node1 eth0", output);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
        Assert.DoesNotContain(Repository.Run("ip", ["netns", "list"], TimeSpan.FromSeconds(10)).Output.Split('\n'), l => l.StartsWith("tk", StringComparison.Ordinal) && l.Contains("sw"));
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
