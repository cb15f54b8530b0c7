using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Comm;

/// <summary>Options of the collective self-test: the launch and the algorithm under test.</summary>
internal sealed record CollectiveSelfTestOptions : IJobOptions
{
    /// <summary>Where the ranks run.</summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = new();

    /// <summary>The algorithm every collective uses.</summary>
    [Option("Collective algorithm under test.")] public CollectiveAlgorithm Algorithm { get; init; }
        = CollectiveAlgorithm.Ring;

    public void Check() { }
}

/// <summary>
/// Runs <see cref="CollectiveProbe"/> on every rank (in-process, under mpiexec or on the emulated cluster) and returns
/// each rank's records; the test suite checks them against one independent reference.
/// </summary>
internal sealed class CollectiveSelfTestJob : RankJob<CollectiveSelfTestOptions, List<ProbeRecord>,
    List<List<ProbeRecord>>>
{
    public override string Kind => "selftest-collectives";

    public override bool UsesTorch => false;

    public override List<ProbeRecord> RunRank(RankContext<CollectiveSelfTestOptions> context)
    {
        context.Comm.Algorithm = context.Options.Algorithm;
        return CollectiveProbe.Run(context.Comm);
    }

    public override List<List<ProbeRecord>> Finish(JobRun<CollectiveSelfTestOptions> run,
        IReadOnlyList<List<ProbeRecord>> outcomes) => [.. outcomes];
}
