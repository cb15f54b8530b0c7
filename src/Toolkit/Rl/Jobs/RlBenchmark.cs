using System.Text.Json.Serialization;
using Toolkit.Options;

namespace Toolkit.Rl;

/// <summary>Options of <c>toolkit bench rl</c>: one RL job run with synchronous rollouts and with C3PO++.</summary>
public sealed record RlBenchmarkOptions
{
    /// <summary>The job (its rollout mode is set by the benchmark). Default: the long-tail task, the small GPT, 8 steps.</summary>
    [OptionGroup(Exclude = ["rollout", "compare"])]
    public RlTrainOptions Job { get; init; } = new()
    {
        Task = "longtail", WarmupSteps = 60, Steps = 8, EvalEvery = 8,
        Rollout = new() { Prompts = 32, Samples = 4, Budget = 960, Pool = 32, Staleness = 2 },   // 32 x 4 responses of about 7 tokens: the same ~900 tokens a step as the budget
        Loss = new() { Normalization = LossNormalization.Budget },
    };
}

/// <summary>
/// Rollout throughput and step time, synchronous against C3PO++, on the same job. The synchronous baseline
/// generates Prompts × Samples responses to completion per step; C3PO++ keeps a pool of Pool sequences
/// full and trains once complete groups reach the budget. Both train on about the same number of tokens
/// per step when Budget ≈ Prompts × Samples × the mean response length.
/// </summary>
public static class RlBenchmark
{
    /// <summary>Runs both configurations; <paramref name="log"/> receives a line per run.</summary>
    public static async Task<RlBenchmarkReport> RunAsync(RlBenchmarkOptions options, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        var runs = new List<RlBenchmarkRun>();
        foreach (var mode in new[] { RolloutMode.Sync, RolloutMode.C3poPlusPlus })
        {
            var job = options.Job with { Rollout = options.Job.Rollout with { Mode = mode } };
            var result = await RlTrainJob.RunAsync(job, null, cancellationToken);
            var timed = result.Steps.Skip(1).DefaultIfEmpty(result.Steps[0]).ToList();   // the first step includes warm-up of the engine
            var run = new RlBenchmarkRun(OptionSpec.EnumName(typeof(RolloutMode), mode), timed.Sum(s => s.TokensPerSecond * s.RolloutSeconds) / timed.Sum(s => s.RolloutSeconds),
                timed.Average(s => s.RolloutSeconds), timed.Average(s => s.RolloutSeconds + s.TrainSeconds + s.SyncSeconds),
                timed.Average(s => s.Responses * s.ResponseLength), result.Steps[^1].RewardMean, result.FinalAccuracy,
                result.Steps.Sum(s => s.Carried), result.Steps.Sum(s => s.Purged), result.RunPath);
            log?.Invoke($"{run.Rollout,-7} {run.TokensPerSecond,8:F0} tokens/s, rollout {run.RolloutSeconds:F2} s, step {run.StepSeconds:F2} s, {run.TrainedTokensPerStep:F0} tokens trained per step, final reward {run.FinalReward:F3}");
            runs.Add(run);
        }
        return new RlBenchmarkReport(options.Job, runs, runs[1].TokensPerSecond / runs[0].TokensPerSecond, runs[0].StepSeconds / runs[1].StepSeconds);
    }
}

/// <summary>The JSON of <c>toolkit bench rl</c>.</summary>
/// <param name="Job">The job both runs used (rollout mode aside).</param>
/// <param name="Runs">Synchronous, then C3PO++.</param>
/// <param name="RolloutSpeedup">C3PO++ rollout tokens/s over the synchronous baseline's.</param>
/// <param name="StepSpeedup">Synchronous step time over C3PO++'s.</param>
public sealed record RlBenchmarkReport(RlTrainOptions Job, IReadOnlyList<RlBenchmarkRun> Runs, double RolloutSpeedup, double StepSpeedup);

/// <summary>One configuration's measurements (means over the steps after the first).</summary>
/// <param name="Rollout">sync or c3po++.</param>
/// <param name="TokensPerSecond">Rollout tokens sampled per second.</param>
/// <param name="RolloutSeconds">Rollout phase per step.</param>
/// <param name="StepSeconds">Rollout, update and weight sync per step.</param>
/// <param name="TrainedTokensPerStep">Response tokens trained on per step.</param>
/// <param name="FinalReward">Mean reward of the last step.</param>
/// <param name="FinalAccuracy">Held-out accuracy at the end.</param>
/// <param name="Carried">Responses carried over, summed over steps.</param>
/// <param name="Purged">Responses purged, summed over steps.</param>
/// <param name="RunPath">The run folder.</param>
public sealed record RlBenchmarkRun(string Rollout, double TokensPerSecond, double RolloutSeconds, double StepSeconds, double TrainedTokensPerStep,
    double FinalReward, double FinalAccuracy, long Carried, long Purged, string RunPath);
