using System.Globalization;
using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Rl;

/// <summary>Options of <c>toolkit bench rl</c>: the same RL job with synchronous rollouts and with C3PO++, at several
/// batch sizes.</summary>
internal sealed record RlBenchmarkOptions : ICheckedOptions
{
    /// <summary>The job (rollout mode, prompts and budget are set by the benchmark). Default: the long-tail task, the
    /// small GPT, 16 steps.</summary>
    [OptionGroup(Exclude = ["rollout", "compare", "prompts", "budget"])]
    public RlTrainOptions Job { get; init; } = new()
    {
        Task = "longtail", WarmupSteps = 60, Steps = 16, EvalEvery = 16,
        Rollout = new() { Samples = 4, Pool = 32, Staleness = 2 },
        Loss = new() { Aggregation = LossAggregation.Budget },
    };

    /// <summary>Prompts per step of the synchronous baseline, one pair of runs per value. Default 8,16,32.</summary>
    [Option("Prompts per step of the synchronous baseline, comma-separated: one synchronous and one C3PO++ run per " +
        "value, C3PO++'s budget Phi set to the response tokens the synchronous run trained on per step.")]
    public string Prompts { get; init; } = "8,16,32";

    /// <summary>Alternating repeats of each pair of runs. Default 2.</summary>
    [Option("Times each pair of runs (synchronous and C3PO++) is repeated, in alternating order, so that the " +
        "machine's drift falls on both modes: the speed-ups compare the modes' means.")]
    public int Repeats { get; init; } = 2;

    /// <summary>The prompt counts, parsed.</summary>
    [JsonIgnore] public IReadOnlyList<int> PromptCounts => [.. Prompts.Split(',',
        StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p =>
        int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n
            : throw new ArgumentOutOfRangeException(nameof(Prompts), p, "is not a positive whole number of prompts"))];

    /// <summary>
    /// Every configuration, by prompt count: the synchronous baseline and C3PO++ jobs with P prompts per step and a
    /// first estimate of Φ, P × G × the mean reference answer length (stop token included) of the task's training
    /// split; <see cref="RlBenchmark.RunAsync"/> replaces it with what the baseline actually trained on.
    /// </summary>
    /// <exception cref="ArgumentException">An invalid option (the message names it).</exception>
    public IReadOnlyList<(int Prompts, RlTrainOptions Sync, RlTrainOptions C3po)> Configurations()
    {
        var counts = PromptCounts;
        if (counts.Count == 0) throw new ArgumentOutOfRangeException(nameof(Prompts), Prompts,
            "names no prompt count; give e.g. 8,16,32");
        var meanResponse = TaskDatasets.Load(Job.TaskDefinition, heldOut: false).Average(p => p.Answer.Length + 1.0);
        RlTrainOptions With(RolloutMode mode, int prompts) =>
            (Job with { Rollout = Job.Rollout with { Mode = mode, Prompts = prompts,
                Budget = (long)Math.Round(prompts * Job.Rollout.Samples * meanResponse),
                InflightUpdate = Job.Rollout.InflightUpdate && mode == RolloutMode.C3poPlusPlus } }).Validate();
        return [.. counts.Select(p => (p, With(RolloutMode.Sync, p), With(RolloutMode.C3poPlusPlus, p)))];
    }

    /// <summary>Throws naming the first invalid option.</summary>
    public void Check()
    {
        if (Repeats < 1) throw new ArgumentOutOfRangeException(nameof(Repeats), Repeats, "must be at least 1");
        Configurations();
    }
}

/// <summary>
/// Rollout throughput and step time, synchronous against C3PO++, on the same job at equal budget. For each prompt count
/// P the synchronous baseline generates P × G responses to completion per step; C3PO++ keeps its pool of Ω sequences
/// full and trains once complete groups reach Φ = the response tokens the baseline trained on per step (its mean
/// over the timed steps), so both steps train on about the same tokens. The long tail costs the baseline the decode
/// steps in which few sequences are left; on a CPU a decode step costs a fixed part (operator dispatch) plus a part
/// per sequence, so the gap is widest when the batch per rank is small. Each run reports its step split into prefill,
/// decode, train and sync, the tokens fed again as prefixes and the sampled tokens thrown away.
/// </summary>
internal static class RlBenchmark
{
    /// <summary>Runs every configuration; <paramref name="log"/> receives a line per run.</summary>
    public static async Task<RlBenchmarkReport> RunAsync(RlBenchmarkOptions options, Action<string>? log = null,
        CancellationToken cancellationToken = default)
    {
        var sizes = new List<RlBenchmarkSize>();
        var configurations = options.Configurations();
        // the process's first job runs slower (the JIT's first tier, the allocators' first requests): not timed
        await RlTrainJob.RunAsync(configurations[0].Sync with { Steps = 2, EvalEvery = 2 }, null, cancellationToken);
        log?.Invoke("warm-up run done (not timed)");
        foreach (var (prompts, sync, c3po) in configurations)
        {
            var runs = new List<RlBenchmarkRun>();
            // pairs in alternating order (sync, C3PO++, C3PO++, sync, ...): the machine's drift falls on both modes
            var order = Enumerable.Range(0, options.Repeats).SelectMany(r => r % 2 == 0 ? new[] { sync, c3po }
                : [c3po, sync]);
            foreach (var configured in order)
            {
                var job = configured == sync ? configured : (configured with { Rollout = configured.Rollout with
                    { Budget = MeasuredBudget(configured, runs[0]) } }).Validate();
                var result = await RlTrainJob.RunAsync(job, null, cancellationToken);
                // the first step includes warm-up of the engine
                var timed = result.Steps.Skip(1).DefaultIfEmpty(result.Steps[0]).ToList();
                var run = new RlBenchmarkRun(OptionSpec.EnumName(typeof(RolloutMode), job.Rollout.Mode), prompts,
                    job.Rollout.Budget,
                    timed.Sum(s => s.TokensPerSecond * s.RolloutSeconds) / timed.Sum(s => s.RolloutSeconds),
                    timed.Average(s => s.RolloutSeconds),
                        timed.Average(s => s.RolloutSeconds + s.TrainSeconds + s.SyncSeconds),
                    timed.Average(s => s.Responses * s.ResponseLength), result.Steps.TakeLast(Math.Max(1,
                        result.Steps.Count / 4)).Average(s => s.RewardMean),
                    result.FinalAccuracy, result.Steps.Sum(s => s.Carried), result.Steps.Sum(s => s.Purged),
                        result.RunPath)
                {
                    PrefillSeconds = timed.Average(s => s.PrefillSeconds),
                    DecodeSeconds = timed.Average(s => s.DecodeSeconds),
                    TrainSeconds = timed.Average(s => s.TrainSeconds), SyncSeconds = timed.Average(s => s.SyncSeconds),
                    PrefixTokensPerStep = timed.Average(s => (double)s.PrefixTokens),
                    WastedTokensPerStep = timed.Average(s => (double)s.WastedTokens),
                };
                log?.Invoke(
                    $"P {prompts,3} Phi {run.Budget,5} {run.Rollout,-7} {run.TokensPerSecond,8:F0} tokens/s, " +
                        $"step {run.StepSeconds:F2} s = rollout {run.RolloutSeconds:F2} (prefill " +
                        $"{run.PrefillSeconds:F2}, decode {run.DecodeSeconds:F2}) + train {run.TrainSeconds:F2} + " +
                        $"sync {run.SyncSeconds:F2}; per step {run.TrainedTokensPerStep:F0} tokens trained, " +
                        $"{run.PrefixTokensPerStep:F0} fed as prefixes, {run.WastedTokensPerStep:F0} wasted; " +
                        $"reward {run.FinalReward:F3} (last quarter)");
                runs.Add(run);
            }
            var syncName = OptionSpec.EnumName(typeof(RolloutMode), RolloutMode.Sync);
            var (syncRuns, c3poRuns) = (runs.Where(r => r.Rollout == syncName).ToList(),
                runs.Where(r => r.Rollout != syncName).ToList());
            static double Trained(List<RlBenchmarkRun> r) =>
                r.Average(x => x.TrainedTokensPerStep) / r.Average(x => x.StepSeconds);
            var size = new RlBenchmarkSize(prompts, c3poRuns[0].Budget, runs,
                c3poRuns.Average(r => r.TokensPerSecond) / syncRuns.Average(r => r.TokensPerSecond),
                syncRuns.Average(r => r.StepSeconds) / c3poRuns.Average(r => r.StepSeconds),
                Trained(c3poRuns) / Trained(syncRuns));
            log?.Invoke(
                $"P {prompts,3}: C3PO++ over synchronous: rollout tokens/s {size.RolloutSpeedup:F2}x, step " +
                    $"time {size.StepSpeedup:F2}x, trained tokens/s {size.TrainedSpeedup:F2}x");
            sizes.Add(size);
        }
        return new RlBenchmarkReport(options.Job, Environment.ProcessorCount, sizes);
    }

    /// <summary>C3PO++'s Φ for a size: the response tokens the synchronous run trained on per step, and at least one
    /// longest response per rank (what <c>rl train</c> requires of a budget).</summary>
    internal static long MeasuredBudget(RlTrainOptions c3po, RlBenchmarkRun sync) =>
        Math.Max((long)Math.Round(sync.TrainedTokensPerStep),
            (long)c3po.Launch.Ranks * c3po.TaskDefinition.MaxCompletionTokens);
}

/// <summary>The JSON of <c>toolkit bench rl</c>.</summary>
/// <param name="Job">The job every run used (rollout mode, prompts and budget aside).</param>
/// <param name="Cores">Cores of the machine.</param>
/// <param name="Sizes">One entry per prompt count.</param>
internal sealed record RlBenchmarkReport(RlTrainOptions Job, int Cores, IReadOnlyList<RlBenchmarkSize> Sizes);

/// <summary>Synchronous and C3PO++ at one batch size.</summary>
/// <param name="Prompts">Prompts per step of the synchronous baseline.</param>
/// <param name="Budget">C3PO++'s Φ (the baseline's expected trained tokens per step).</param>
/// <param name="Runs">Pairs of runs, as many as the repeats, the first synchronous then C3PO++, the next the other
/// way round, and so on.</param>
/// <param name="RolloutSpeedup">C3PO++'s mean rollout tokens/s over the synchronous baseline's.</param>
/// <param name="StepSpeedup">The synchronous baseline's mean step time over C3PO++'s.</param>
/// <param name="TrainedSpeedup">Response tokens trained per second of whole steps, C3PO++'s over the baseline's
/// (each mode's mean tokens trained per step over its mean step time): the step speed-up corrected for steps that
/// train different numbers of tokens.</param>
internal sealed record RlBenchmarkSize(int Prompts, long Budget, IReadOnlyList<RlBenchmarkRun> Runs,
    double RolloutSpeedup, double StepSpeedup, double TrainedSpeedup);

/// <summary>One configuration's measurements (means over the steps after the first).</summary>
/// <param name="Rollout">sync or c3po++.</param>
/// <param name="Prompts">Prompts per step (the synchronous baseline's batch).</param>
/// <param name="Budget">Φ (used by C3PO++ and by the budget normalisation).</param>
/// <param name="TokensPerSecond">Rollout tokens sampled per second.</param>
/// <param name="RolloutSeconds">Rollout phase per step.</param>
/// <param name="StepSeconds">Rollout, update and weight sync per step.</param>
/// <param name="TrainedTokensPerStep">Response tokens trained on per step.</param>
/// <param name="FinalReward">Mean reward over the last quarter of the steps.</param>
/// <param name="FinalAccuracy">Held-out accuracy at the end.</param>
/// <param name="Carried">Responses carried over, summed over steps.</param>
/// <param name="Purged">Responses purged, summed over steps.</param>
/// <param name="RunPath">The run folder.</param>
internal sealed record RlBenchmarkRun(string Rollout, int Prompts, long Budget, double TokensPerSecond,
    double RolloutSeconds, double StepSeconds, double TrainedTokensPerStep,
    double FinalReward, double FinalAccuracy, long Carried, long Purged, string RunPath)
{
    /// <summary>Of the rollout: engine steps that fed prefixes (prompts, resumed sequences).</summary>
    public double PrefillSeconds { get; init; }

    /// <summary>Of the rollout: decode-only engine steps.</summary>
    public double DecodeSeconds { get; init; }

    /// <summary>The policy update per step.</summary>
    public double TrainSeconds { get; init; }

    /// <summary>Gathering the weights and loading them into the engine, per step.</summary>
    public double SyncSeconds { get; init; }

    /// <summary>Tokens fed again as prefixes per step (prompts, resumed sequences' earlier tokens).</summary>
    public double PrefixTokensPerStep { get; init; }

    /// <summary>Sampled tokens thrown away per step (purged responses).</summary>
    public double WastedTokensPerStep { get; init; }
}
