using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Toolkit.Paro;

namespace Toolkit.Interactive.Magic;

/// <summary>The options <c>#!paro train</c> and <c>#!paro compare</c> share (everything but the strategy), bound to <see cref="ParoTrainOptions"/>.</summary>
public abstract class ParoJobCommand : KernelDirectiveCommand
{
    private protected static readonly ParoTrainOptions Defaults = new();

    /// <summary><c>--ranks</c>.</summary>
    public int Ranks { get; set; } = Defaults.Ranks;
    /// <summary><c>--np</c> (same as --ranks, for MPI users).</summary>
    public int? Np { get; set; }
    /// <summary><c>--group-size</c>.</summary>
    public int GroupSize { get; set; } = Defaults.GroupSize;
    /// <summary><c>--accumulation</c>.</summary>
    public int Accumulation { get; set; } = Defaults.Accumulation;
    /// <summary><c>--steps</c>.</summary>
    public int Steps { get; set; } = Defaults.Steps;
    /// <summary><c>--seed</c>.</summary>
    public int Seed { get; set; } = Defaults.Seed;
    /// <summary><c>--model</c>.</summary>
    public string Model { get; set; } = Defaults.Model;
    /// <summary><c>--precision</c>.</summary>
    public ParoPrecision Precision { get; set; } = Defaults.Precision;
    /// <summary><c>--launcher</c>.</summary>
    public string Launcher { get; set; } = "inproc";
    /// <summary><c>--micro-batch</c>.</summary>
    public int MicroBatch { get; set; } = Defaults.MicroBatch;
    /// <summary><c>--lr</c>.</summary>
    public double Lr { get; set; } = Defaults.LearningRate;
    /// <summary><c>--runs-dir</c>.</summary>
    public string RunsDir { get; set; } = Defaults.RunsDirectory;
    /// <summary><c>--collectives</c>.</summary>
    public string Collectives { get; set; } = Defaults.Collectives;

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => MagicOptions.ValidationErrors(() => ToOptions());

    /// <summary>The job options, validated (the strategy is the command's own, or the default).</summary>
    internal ParoTrainOptions ToOptions() => new ParoTrainOptions
    {
        Strategy = JobStrategy, Ranks = Np ?? Ranks, GroupSize = GroupSize, Accumulation = Accumulation, Steps = Steps, Seed = Seed, Model = Model,
        Precision = Precision, MicroBatch = MicroBatch, LearningRate = Lr, RunsDirectory = RunsDir, Collectives = Collectives,
        Launcher = Launcher.ToLowerInvariant() switch
        {
            "inproc" => Paro.Launcher.InProcess,
            "mpi" => Paro.Launcher.Mpi,
            _ => throw new ArgumentException($"--launcher must be inproc or mpi (got '{Launcher}')."),
        },
    }.Validate();

    private protected virtual string JobStrategy => Defaults.Strategy;
}
