using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Options;

namespace Toolkit.Paro;

/// <summary>Options of <c>toolkit bench layerwise</c>: one PaRO job run with whole-model gathering and layer-wise, side
/// by side.</summary>
internal sealed record LayerwiseBenchmarkOptions : ICheckedOptions
{
    /// <summary>Where the ranks run (in-process or MPI). Default 4 in-process ranks in groups of 2.</summary>
    [OptionGroup(Exclude = ["nodes", "ranks-per-node", "gpus-per-node", "partition", "time", "account", "slurm-args",
        "slurm-submit"])]
    public LaunchOptions Launch { get; init; } = new();

    /// <summary>Strategy, accumulation, precision, collectives (layer-wise is what the benchmark varies). Default GGG
    /// (ZeRO-3), A = 4.</summary>
    [OptionGroup(Exclude = ["layerwise"])] public ShardingOptions Sharding { get; init; } = new() { Strategy = "GGG",
        Accumulation = 4 };

    /// <summary>The model. Default the base GPT (85 M).</summary>
    [OptionGroup] public ModelOptions Model { get; init; } = new() { Name = "base" };

    /// <summary>Micro-batch and text. Default 1 sequence.</summary>
    [OptionGroup] public TextDataOptions Data { get; init; } = new() { MicroBatch = 1 };

    /// <summary>Steps per run. Default 3 (the first is warm-up and not timed).</summary>
    [Option("Steps per run (the first is warm-up and not timed).")] public int Steps { get; init; } = 3;

    /// <summary>The whole-model job (the layer-wise one differs only in <see
    /// cref="ShardingOptions.Layerwise"/>).</summary>
    [JsonIgnore] public ParoTrainOptions Job => new() { Launch = Launch, Sharding = Sharding with { Layerwise = false,
        Recompute = false, NoPrefetch = false }, Model = Model, Data = Data, Steps = Steps };

    /// <inheritdoc/>
    public void Check()
    {
        Job.Validate();
        if (Steps < 2) throw new ArgumentOutOfRangeException(nameof(Steps), Steps,
            "must be at least 2 (the first step is warm-up and not timed)");
    }
}

/// <summary>
/// Runs the same PaRO job with whole-model gathering and with layer-wise execution, one after the other, and
/// reports their throughput, traffic and measured memory next to the allowance layer-wise execution should meet:
/// the rank's model states plus two blocks' parameters and gradients.
/// </summary>
internal static class LayerwiseBenchmark
{
    /// <summary>Runs both; <paramref name="log"/> receives a line per run.</summary>
    public static async Task<LayerwiseBenchmarkReport> RunAsync(LayerwiseBenchmarkOptions options,
        Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        options.Check();
        var whole = await Run(options.Job, "whole model", log, cancellationToken);
        var layerwise = await Run(options.Job with { Sharding = options.Sharding with { Layerwise = true } },
            $"layer-wise{(options.Sharding.Recompute ? ", recomputed" : "")}{(options.Sharding.NoPrefetch ? ", no " +
                "prefetch" : "")}", log, cancellationToken);
        var block = ModelLayout.LargestBlock(options.Model.Resolve().Config);
        var blockBytes = block * options.Job.Plan.ComputeBytes;
        var allowance = layerwise.ModelStateBytes + 2 * (blockBytes + blockBytes);
        var lossDifference = whole.Losses.Zip(layerwise.Losses, (a, b) => Math.Abs(a - b) / Math.Max(Math.Abs(a),
            1e-30)).Max();
        return new LayerwiseBenchmarkReport(options.Job, Environment.ProcessorCount, whole, layerwise,
            layerwise.TokensPerSecond / whole.TokensPerSecond,
            (double)layerwise.PeakBytes / whole.PeakBytes, block, allowance, layerwise.PeakBytes <= allowance,
                lossDifference);
    }

    private static async Task<LayerwiseRun> Run(ParoTrainOptions job, string name, Action<string>? log,
        CancellationToken cancellationToken)
    {
        var result = await ParoTrainJob.RunAsync(job, null, cancellationToken);
        var memory = result.Memory.MaxBy(m => m.PeakBytes)!;
        var run = new LayerwiseRun(result.Throughput.StepSeconds, result.Throughput.TokensPerSecond,
            memory.ParamsBytes + memory.GradsBytes + memory.OptimizerBytes,
            memory.PeakBytes, result.Comm.IntraBytesPerStep, result.Comm.InterBytesPerStep,
                [.. result.Steps.Select(s => s.Loss)], result.RunPath);
        log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{name,-12} {job.Sharding.Strategy} A={job.Sharding.Accumulation}: {run.StepSeconds * 1000:F0} " +
            $"ms/step, {run.TokensPerSecond:F0} tokens/s, peak {run.PeakBytes / 1048576.0:F1} MiB per rank " +
            $"(model states {run.ModelStateBytes / 1048576.0:F1} MiB), " +
            $"inter {run.InterBytesPerStep / 1048576.0:F1} MiB/step"));
        return run;
    }
}

/// <summary>What <c>bench layerwise</c> measured.</summary>
/// <param name="Job">The whole-model job (the layer-wise run differs only in that).</param>
/// <param name="Cores">Processor count of the machine.</param>
/// <param name="WholeModel">Whole-model gathering.</param>
/// <param name="Layerwise">Layer-wise execution.</param>
/// <param name="ThroughputRatio">Layer-wise tokens/s over whole-model tokens/s.</param>
/// <param name="PeakRatio">Layer-wise peak over whole-model peak (largest rank of each).</param>
/// <param name="BlockParameters">Parameters of one block.</param>
/// <param name="AllowanceBytes">The issue's layer-wise target: the rank's model states plus two blocks' parameters and
/// gradients. What the peak actually holds besides the states is the blocks' parameter slots (two gathered blocks, one
/// with --no-prefetch) with the largest of: around the head, the root (embeddings, final norm), gathered (p ≠ N) and
/// with a full gradient buffer (g ≠ N); in the last block's backward, the root's gradient being reduced and that
/// block's; in the other blocks' backward, two blocks' gradient buffers (one being written, one being reduced). It is
/// within the allowance while the root is no larger than a block. Activations are not counted.</param>
/// <param name="WithinAllowance">Whether the layer-wise peak is at most the allowance.</param>
/// <param name="MaxLossRelativeDifference">Largest relative difference between the two runs' losses (the schedules are
/// equivalent; only summation order may differ).</param>
internal sealed record LayerwiseBenchmarkReport(ParoTrainOptions Job, int Cores, LayerwiseRun WholeModel,
    LayerwiseRun Layerwise, double ThroughputRatio, double PeakRatio,
    long BlockParameters, long AllowanceBytes, bool WithinAllowance, double MaxLossRelativeDifference);

/// <summary>One run of <c>bench layerwise</c>.</summary>
/// <param name="StepSeconds">Median step time (after the first).</param>
/// <param name="TokensPerSecond">Tokens of all ranks per second.</param>
/// <param name="ModelStateBytes">Parameters, gradients and optimizer state of the rank with the largest peak.</param>
/// <param name="PeakBytes">Model states plus the peak transient of that rank, measured from its buffers.</param>
/// <param name="IntraBytesPerStep">Bytes per rank per step inside groups.</param>
/// <param name="InterBytesPerStep">Bytes per rank per step across groups.</param>
/// <param name="Losses">Loss per step.</param>
/// <param name="RunPath">The run folder.</param>
internal sealed record LayerwiseRun(double StepSeconds, double TokensPerSecond, long ModelStateBytes, long PeakBytes,
    long IntraBytesPerStep, long InterBytesPerStep,
    IReadOnlyList<double> Losses, string RunPath);
