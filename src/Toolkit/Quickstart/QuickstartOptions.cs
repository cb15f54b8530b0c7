using System.Globalization;
using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Options;
using Toolkit.Reporting;

namespace Toolkit.Quickstart;

/// <summary>Options of the quickstart job: data-parallel training of a small regression network, on in-process ranks by
/// default.</summary>
public sealed record QuickstartOptions : IJobOptions
{
    /// <summary>Where the ranks run. Default 4 in-process ranks in groups of 2.</summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = new();

    /// <summary>Optimizer steps. Default 200.</summary>
    [Option("Optimizer steps.")] public int Steps { get; init; } = 200;

    /// <summary>Samples per rank per step. Default 32.</summary>
    [Option("Samples per rank per step.")] public int BatchPerRank { get; init; } = 32;

    /// <summary>Hidden width of the network. Default 64.</summary>
    [Option("Hidden width of the network.")] public int Hidden { get; init; } = 64;

    /// <summary>Seed of data and initial weights. Default 1.</summary>
    [Option("Seed of data and initial weights.")] public int Seed { get; init; } = 1;

    /// <summary>Restarts allowed when a rank dies or the job fails (torchrun's meaning). Default 0.</summary>
    [Option("Restarts allowed when a rank dies or the job fails (torchrun's --max-restarts): every rank starts again " +
        "from the beginning (the quickstart keeps no checkpoints; its seeds make the rerun identical), each restart " +
        "recorded in restarts.jsonl and the log.")]
    public int MaxRestarts { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid option.</summary>
    public QuickstartOptions Validate()
    {
        Launch.Validate();
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "must be at least 1");
        if (BatchPerRank < 1) throw new ArgumentOutOfRangeException(nameof(BatchPerRank), BatchPerRank,
            "must be at least 1");
        if (Hidden < 1) throw new ArgumentOutOfRangeException(nameof(Hidden), Hidden, "must be at least 1");
        if (MaxRestarts < 0) throw new ArgumentOutOfRangeException(nameof(MaxRestarts), MaxRestarts,
            "must not be negative");
        return this;
    }

    void ICheckedOptions.Check() => Validate();
}

/// <summary>What the quickstart job measured.</summary>
/// <param name="RunId">The run folder's name.</param>
/// <param name="RunPath">The run folder.</param>
/// <param name="ReportPath">The offline HTML report.</param>
/// <param name="Loss">Mean loss over ranks, per step.</param>
/// <param name="IntraBytesPerStep">Bytes a rank sent inside its group per step (the largest over ranks).</param>
/// <param name="InterBytesPerStep">Bytes a rank sent to other groups per step (the largest over ranks).</param>
/// <param name="StepSeconds">Median wall time of a step.</param>
/// <param name="ReplicaDivergence">Largest absolute parameter difference between rank 0 and any other rank at the end
/// (0 for exact data parallelism).</param>
public sealed record QuickstartResult(
    string RunId, string RunPath, string ReportPath, IReadOnlyList<double> Loss,
    long IntraBytesPerStep, long InterBytesPerStep, double StepSeconds, double ReplicaDivergence) : IFacts
{
    /// <inheritdoc/>
    [JsonIgnore] public string Title => $"Quickstart run {RunId}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts() =>
    [
        ("loss", string.Create(CultureInfo.InvariantCulture, $"{Loss[0]:F4} -> {Loss[^1]:F4}")),
        ("bytes per rank per step, largest over ranks (intra / inter)", $"{IntraBytesPerStep} / {InterBytesPerStep}"),
        ("median step", string.Create(CultureInfo.InvariantCulture, $"{StepSeconds * 1000:F1} ms")),
        ("replica divergence", ReplicaDivergence.ToString("G3", CultureInfo.InvariantCulture)),
        ("run folder", RunPath),
        ("report", ReportPath),
    ];
}
