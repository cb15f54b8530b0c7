using System.Globalization;
using System.Text.Json;
using Toolkit.Jobs;
using Toolkit.Paro;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Jobs;

/// <summary>Two emulated nodes (network namespaces with their own hostnames, links shaped to 1 Gbit/s), each running a
/// slurmd, slurmctld on node0, munge: started by build/emulate-cluster.sh --slurm (needs root).</summary>
public sealed class EmulatedSlurm : IDisposable
{
    public SlurmCluster Cluster { get; } = SlurmCluster.Emulated(nodes: 2, cpus: 2);

    public void Dispose() => Cluster.Dispose();
}

/// <summary>
/// A PaRO job submitted with <c>--launcher slurm --nodes 2 --ranks-per-node 2</c> to a real multi-node Slurm: its ranks
/// run on both emulated nodes (one group per node), its losses equal the in-process run's, and its inter-node traffic
/// crossed the shaped links.
/// </summary>
[Collection(EmulatedClusterCollection.Name)]
public sealed class SlurmEmulatedClusterTests(EmulatedSlurm slurm) : IClassFixture<EmulatedSlurm>, IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-slurm-emulated-");

    public void Dispose() => _runs.Dispose();

    [Fact]
    public async Task TwoNodesOfTwo_RunTheRanksOnBothNodes_Exactly()
    {
        var options = new ParoTrainOptions { Sharding = new() { Strategy = "IGG" }, Steps = 3,
            Launch = new() { Ranks = 4, GroupSize = 2, RunsDirectory = _runs.Path } };
        var inProcess = await ParoTrainJob.RunAsync(options);
        var sent = Transmitted("n1");
        var run = await ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher = Launcher.Slurm,
            Nodes = 2, RanksPerNode = 2 } });

        Close.Losses(inProcess.Steps, run.Steps);
        Assert.Equal(inProcess.Comm, run.Comm);
        var hosts = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.RunPath,
            JobHost.HostsFile))).RootElement.EnumerateArray()
            .Select(h => (h.GetProperty("group").GetInt32(), h.GetProperty("host").GetString())).ToList();
        Assert.Equal([(0, "node0"), (0, "node0"), (1, "node1"), (1, "node1")], hosts);
        // node1's link carried at least the job's inter-group bytes of its two ranks (every step), through the shaped
        // interface.
        Assert.True(Transmitted("n1") - sent >= options.Steps * run.Comm.InterBytesPerStep,
            $"node1 eth0 sent {Transmitted("n1") - sent} bytes");
    }

    [Fact]
    public void Cli_SubmitsToTheCluster()
    {
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "paro", "train", "--launcher", "slurm",
            "--nodes", "2", "--ranks-per-node", "2",
            "--steps", "2", "--runs-dir", _runs.Path], TimeSpan.FromMinutes(3), workingDirectory: _runs.Path);
        Assert.True(code == 0, output);
        Assert.Contains("running on node[0-1]", output);
        Assert.Contains("step    2/2", output);
    }

    /// <summary>Bytes sent so far by an emulated node's eth0 (its shaped link).</summary>
    private long Transmitted(string node)
    {
        var (code, output) = Repository.Run("ip", ["netns", "exec", $"{slurm.Cluster.Prefix}{node}", "cat",
            "/sys/class/net/eth0/statistics/tx_bytes"], TimeSpan.FromSeconds(10));
        Assert.True(code == 0, output);
        return long.Parse(output.Trim(), CultureInfo.InvariantCulture);
    }
}
