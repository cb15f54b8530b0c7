using Toolkit.Jobs;
using Toolkit.Comm;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Comm;

/// <summary>
/// Every collective of <see cref="Communicator"/>, checked element by element and byte by byte against
/// <see cref="ProbeReference"/>, on each backend and algorithm (one sealed subclass each).
/// </summary>
public abstract class CollectivesContractTests
{
    /// <summary>Runs the probe on <paramref name="n"/> ranks in groups of <paramref name="m"/>; returns each rank's
    /// records.</summary>
    private protected abstract IReadOnlyList<List<ProbeRecord>> RunProbe(int n, int m);

    /// <summary>Whether the algorithm under test is a flat ring (its bytes are checked exactly here).</summary>
    private protected virtual bool FlatRing => true;

    [Theory]
    [InlineData(4, 2)]
    [InlineData(3, 1)]
    [InlineData(2, 2)]
    [InlineData(6, 3)]
    public void Probe_MatchesReference_ValuesAndBytes(int n, int m) => ProbeReference.Check(RunProbe(n, m), n, m,
        FlatRing);
}

public class InProcessCollectivesTests : CollectivesContractTests
{
    private protected virtual CollectiveAlgorithm Algorithm => CollectiveAlgorithm.Ring;

    private protected override IReadOnlyList<List<ProbeRecord>> RunProbe(int n, int m) =>
        InProcessCluster.Run(n, m, comm => { comm.Algorithm = Algorithm; return CollectiveProbe.Run(comm); });
}

public sealed class InProcessHierarchicalCollectivesTests : InProcessCollectivesTests
{
    private protected override CollectiveAlgorithm Algorithm => CollectiveAlgorithm.Hierarchical;
    private protected override bool FlatRing => false;
}

public sealed class InProcessHoRingCollectivesTests : InProcessCollectivesTests
{
    private protected override CollectiveAlgorithm Algorithm => CollectiveAlgorithm.HoRing;
    private protected override bool FlatRing => false;
}

public abstract class MpiCollectivesTests(string algorithm) : CollectivesContractTests
{
    private protected override bool FlatRing => algorithm is "ring" or "native";

    private protected override IReadOnlyList<List<ProbeRecord>> RunProbe(int n, int m)
    {
        using var runs = new TemporaryFolder("toolkit-probe-");
        return JobHost.RunAsync(new CollectiveSelfTestJob(), new CollectiveSelfTestOptions
        {
            Launch = new() { Launcher = Launcher.Mpi, Ranks = n, GroupSize = m, RunsDirectory = runs.Path },
            Algorithm = CollectiveAlgorithms.Parse(algorithm),
        }).GetAwaiter().GetResult();
    }
}

public sealed class MpiRingCollectivesTests() : MpiCollectivesTests("ring");

public sealed class MpiNativeCollectivesTests() : MpiCollectivesTests("native");

public sealed class MpiHierarchicalCollectivesTests() : MpiCollectivesTests("hierarchical");

public sealed class MpiHoRingCollectivesTests() : MpiCollectivesTests("ho-ring");
