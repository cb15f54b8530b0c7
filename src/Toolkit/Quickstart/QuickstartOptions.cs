using Toolkit.Runs;

namespace Toolkit.Quickstart;

/// <summary>Options of the quickstart job: data-parallel training of a small regression network on in-process ranks.</summary>
public sealed record QuickstartOptions
{
    /// <summary>Number of ranks (threads). Default 4.</summary>
    public int Ranks { get; init; } = 4;

    /// <summary>Ranks per group (m), which must divide <see cref="Ranks"/>; decides what traffic counts as intra-group. Default 2.</summary>
    public int GroupSize { get; init; } = 2;

    /// <summary>Optimizer steps. Default 200.</summary>
    public int Steps { get; init; } = 200;

    /// <summary>Samples per rank per step. Default 32.</summary>
    public int BatchPerRank { get; init; } = 32;

    /// <summary>Hidden width of the network. Default 64.</summary>
    public int Hidden { get; init; } = 64;

    /// <summary>Seed of data and initial weights. Default 1.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Folder that holds run folders. Default <see cref="RunDirectory.DefaultRoot"/> (<c>$TOOLKIT_RUNS_DIR</c>, else <c>runs</c>).</summary>
    public string RunsDirectory { get; init; } = RunDirectory.DefaultRoot;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid option.</summary>
    public QuickstartOptions Validate()
    {
        if (Ranks < 1) throw new ArgumentOutOfRangeException(nameof(Ranks), Ranks, "must be at least 1");
        if (GroupSize < 1 || Ranks % GroupSize != 0) throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, $"must divide Ranks ({Ranks})");
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "must be at least 1");
        if (BatchPerRank < 1) throw new ArgumentOutOfRangeException(nameof(BatchPerRank), BatchPerRank, "must be at least 1");
        if (Hidden < 1) throw new ArgumentOutOfRangeException(nameof(Hidden), Hidden, "must be at least 1");
        return this;
    }
}

/// <summary>What the quickstart job measured.</summary>
/// <param name="RunId">The run folder's name.</param>
/// <param name="RunPath">The run folder.</param>
/// <param name="ReportPath">The offline HTML report.</param>
/// <param name="Loss">Mean loss over ranks, per step.</param>
/// <param name="IntraBytesPerStep">Bytes a rank sent inside its group per step (the largest over ranks).</param>
/// <param name="InterBytesPerStep">Bytes a rank sent to other groups per step (the largest over ranks).</param>
/// <param name="StepSeconds">Median wall time of a step.</param>
/// <param name="ReplicaDivergence">Largest absolute parameter difference between rank 0 and any other rank at the end (0 for exact data parallelism).</param>
public sealed record QuickstartResult(
    string RunId, string RunPath, string ReportPath, IReadOnlyList<double> Loss,
    long IntraBytesPerStep, long InterBytesPerStep, double StepSeconds, double ReplicaDivergence);
