using Toolkit.Comm;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Comm;

/// <summary>
/// Every collective of <see cref="Communicator"/>, checked element by element and byte by byte
/// against <see cref="ProbeReference"/>, on each backend and algorithm (one sealed subclass each).
/// </summary>
public abstract class CollectivesContractTests
{
    /// <summary>Runs the probe on <paramref name="n"/> ranks in groups of <paramref name="m"/>; returns each rank's records.</summary>
    private protected abstract IReadOnlyList<List<ProbeRecord>> RunProbe(int n, int m);

    [Theory]
    [InlineData(4, 2)]
    [InlineData(3, 1)]
    [InlineData(2, 2)]
    public void Probe_MatchesReference_ValuesAndBytes(int n, int m) => ProbeReference.Check(RunProbe(n, m), n, m);
}

public sealed class InProcessCollectivesTests : CollectivesContractTests
{
    private protected override IReadOnlyList<List<ProbeRecord>> RunProbe(int n, int m) =>
        InProcessCluster.Run(n, m, CollectiveProbe.Run);
}

public abstract class MpiCollectivesTests(string algorithm) : CollectivesContractTests
{
    private protected override IReadOnlyList<List<ProbeRecord>> RunProbe(int n, int m)
    {
        var dir = Directory.CreateTempSubdirectory("toolkit-probe-");
        try
        {
            Repository.RunMpi(n, "selftest", "collectives", "--out", dir.FullName, "--algorithm", algorithm, "--group-size", m.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return Enumerable.Range(0, n).Select(r => CollectiveProbe.Read(Path.Combine(dir.FullName, $"rank-{r}.json"))).ToList();
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

public sealed class MpiRingCollectivesTests() : MpiCollectivesTests("ring");

public sealed class MpiNativeCollectivesTests() : MpiCollectivesTests("native");
