using System.Globalization;
using System.Text.Json.Serialization;
using Toolkit.Reporting;

namespace Toolkit.Rl;

/// <summary>One RL step's diagnostics over all ranks (the JSON of <c>toolkit rl train</c>, per step).</summary>
/// <param name="Step">Step index (0-based).</param>
/// <param name="RewardMean">Mean reward of the step's responses.</param>
/// <param name="RewardStd">Their standard deviation.</param>
/// <param name="MalformedFraction">Share of responses that broke the task's format.</param>
/// <param name="HeldOutAccuracy">Held-out accuracy with greedy decoding after this step (NaN when not
/// evaluated).</param>
/// <param name="GradNorm">L2 norm of the averaged gradient before clipping (mean over the step's optimizer
/// steps).</param>
/// <param name="LogProbDiffMean">Mean |log π_train − log π_infer| over response tokens.</param>
/// <param name="LogProbDiffMax">Largest |log π_train − log π_infer|.</param>
/// <param name="KlInferTrain">k3 estimate of KL(π_infer ‖ π_train).</param>
/// <param name="MaskedFraction">Share of tokens masked (IcePop, MIS) or truncated (TIS).</param>
/// <param name="EntropyMasked">Mean trainer entropy of masked tokens (NaN when none).</param>
/// <param name="EntropyKept">Mean trainer entropy of kept tokens.</param>
/// <param name="Entropy">Mean policy entropy over response tokens.</param>
/// <param name="SampledLogProb">Mean log π_infer of the sampled tokens.</param>
/// <param name="ResponseLength">Mean response length in tokens.</param>
/// <param name="TokensPerSecond">Rollout tokens sampled per second (all ranks).</param>
/// <param name="RolloutSeconds">Wall time of the rollout phase (slowest rank).</param>
/// <param name="TrainSeconds">Wall time of the update.</param>
/// <param name="SyncSeconds">Wall time of the weight sync to the rollout engines.</param>
/// <param name="SyncBytes">Bytes each rank's engine received in the sync.</param>
/// <param name="Responses">Responses trained on.</param>
/// <param name="Carried">Responses carried over unfinished (C3PO++).</param>
/// <param name="Purged">Responses purged as stale (C3PO++).</param>
/// <param name="Staleness">Trained responses by how many policy versions their oldest token lags (index 0, 1, ...; the
/// last bin holds the rest).</param>
/// <param name="RoutingFlips">Moe policies: per layer, the share of response tokens whose chosen experts differ between
/// the rollout engine and the trainer (empty for dense).</param>
public sealed record RlStep(int Step, double RewardMean, double RewardStd, double MalformedFraction,
    double HeldOutAccuracy, double GradNorm,
    double LogProbDiffMean, double LogProbDiffMax, double KlInferTrain, double MaskedFraction, double EntropyMasked,
        double EntropyKept,
    double Entropy, double SampledLogProb, double ResponseLength, double TokensPerSecond, double RolloutSeconds,
        double TrainSeconds,
    double SyncSeconds, long SyncBytes, long Responses, long Carried, long Purged, IReadOnlyList<long> Staleness,
        IReadOnlyList<double> RoutingFlips)
{
    /// <summary>Share of the kept response tokens where the PPO clip bound (their clipped term was the smaller), over
    /// the step's optimizer steps: 0 with one step per batch, where the ratio is 1.</summary>
    public double ClipFraction { get; init; }

    /// <summary>The step's learning rate (after warm-up and decay).</summary>
    public double LearningRate { get; init; }

    /// <summary>Groups dynamic sampling dropped this step (all rewards equal, or beyond the batch size).</summary>
    public int DroppedGroups { get; init; }

    /// <summary>Of <see cref="RolloutSeconds"/> (the largest over ranks): the engine steps that fed prefixes
    /// (prompts and resumed sequences, with the decode rows beside them).</summary>
    public double PrefillSeconds { get; init; }

    /// <summary>Of <see cref="RolloutSeconds"/> (the largest over ranks): the decode-only engine steps.</summary>
    public double DecodeSeconds { get; init; }

    /// <summary>Tokens fed again as prefixes over all ranks: prompts, and resumed sequences' earlier tokens.</summary>
    public long PrefixTokens { get; init; }

    /// <summary>Sampled tokens thrown away over all ranks: purged responses (C3PO++) and groups dynamic sampling
    /// dropped.</summary>
    public long WastedTokens { get; init; }

    /// <summary>The mismatch diagnostics of the tokens the current policy version generated (all of them in sync
    /// mode).</summary>
    public VersionDiagnostics? Current { get; init; }

    /// <summary>Those of the tokens older versions generated: C3PO++'s carried-over rollouts, whose ratio k mixes
    /// staleness with the engine's numerics.</summary>
    public VersionDiagnostics? Stale { get; init; }

    /// <summary>The largest lag of a trained response.</summary>
    [JsonIgnore] public int MaxStaleness => Staleness.Select((count, lag) => count > 0 ? lag : 0).Max();
}

/// <summary>A step's mismatch diagnostics over the tokens of one kind (generated by the current policy version, or
/// by older ones).</summary>
/// <param name="TokenFraction">Their share of the step's response tokens.</param>
/// <param name="LogProbDiffMean">Mean |log π_train − log π_infer| over them (NaN when there are none).</param>
/// <param name="LogProbDiffMax">The largest.</param>
/// <param name="KlInferTrain">k3 KL(π_infer ‖ π_train) over them.</param>
/// <param name="MaskedFraction">Share of them masked (or truncated) by the correction.</param>
/// <param name="RoutingFlips">Share of them routed to other experts by trainer and engine (mean over layers; NaN for
/// a dense policy).</param>
public sealed record VersionDiagnostics(double TokenFraction, double LogProbDiffMean, double LogProbDiffMax,
    double KlInferTrain, double MaskedFraction, double RoutingFlips);

/// <summary>What <c>rl train</c> measured.</summary>
/// <param name="Options">The options it ran with.</param>
/// <param name="InitialAccuracy">Held-out accuracy before any training.</param>
/// <param name="WarmStartAccuracy">Held-out accuracy after the supervised warm start, before RL.</param>
/// <param name="FinalAccuracy">Held-out accuracy after the last step.</param>
/// <param name="Steps">One row per RL step.</param>
/// <param name="WarmStartSeconds">Wall time of the warm start.</param>
/// <param name="Seconds">Wall time of the RL phase.</param>
/// <param name="RunPath">The run folder.</param>
public sealed record RlTrainResult(RlTrainOptions Options, double InitialAccuracy, double WarmStartAccuracy,
    double FinalAccuracy,
    IReadOnlyList<RlStep> Steps, double WarmStartSeconds, double Seconds, string RunPath) : IFacts
{
    /// <inheritdoc/>
    [JsonIgnore] public string Title
        => $"RL {Options.Task}, {Options.Correction.Correction.ToString().ToLowerInvariant()}, " +
            $"{Options.Rollout.Precision.ToString().ToLowerInvariant()} rollouts: {Path.GetFileName(RunPath)}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts()
    {
        static string F(double v, string format = "F3") => v.ToString(format, CultureInfo.InvariantCulture);
        double Median(Func<RlStep, double> f) => Runtime.Statistics.Median(Steps.Select(f));
        return
        [
            ("held-out accuracy: initial / after warm start / final",
                $"{F(InitialAccuracy)} / {F(WarmStartAccuracy)} / {F(FinalAccuracy)}"),
            ("reward: first step -> last step", $"{F(Steps[0].RewardMean)} -> {F(Steps[^1].RewardMean)}"),
            ("median |dlogp| mean / max",
                $"{F(Median(s => s.LogProbDiffMean), "G3")} / {F(Median(s => s.LogProbDiffMax), "G3")}"),
            ("median KL(infer||train) (k3)", F(Median(s => s.KlInferTrain), "G3")),
            ("median masked fraction", F(Median(s => s.MaskedFraction), "G3")),
            ("median rollout tokens/s", F(Median(s => s.TokensPerSecond), "F0")),
            ("time: warm start / RL (rollout, train, sync per step)",
                $"{F(WarmStartSeconds, "F1")} s / {F(Seconds, "F1")} s " +
                    $"({F(Median(s => s.RolloutSeconds))}, {F(Median(s => s.TrainSeconds))}, " +
                    $"{F(Median(s => s.SyncSeconds))} s)"),
            ("run folder", RunPath),
        ];
    }
}
