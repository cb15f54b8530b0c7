using System.Diagnostics;
using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Paro;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>What one RL step's policy update did on this rank.</summary>
/// <param name="Loss">Mean loss over the optimizer steps.</param>
/// <param name="GradNorm">Mean gradient norm over the optimizer steps (before clipping).</param>
/// <param name="GradNormMax">The largest of them.</param>
/// <param name="ClipFraction">Share of the kept tokens where the PPO clip bound, over every optimizer step.</param>
/// <param name="Diagnostics">The mismatch diagnostics at θ_old.</param>
/// <param name="Current">Those of the tokens the current policy version generated.</param>
/// <param name="Stale">Those of the tokens older versions generated (C3PO++'s carried-over rollouts).</param>
/// <param name="EntropySum">Σ of the policy's entropy over response tokens.</param>
/// <param name="SampledLogProbSum">Σ of log π_infer over response tokens.</param>
/// <param name="RewardSum">Σ of rewards.</param>
/// <param name="RewardSquares">Σ of squared rewards.</param>
/// <param name="Responses">Responses trained on.</param>
/// <param name="Malformed">Of those, how many broke the task's format.</param>
/// <param name="Staleness">Responses by the versions their oldest token lags.</param>
/// <param name="RoutingFlips">Per expert layer, response tokens routed differently by trainer and engine.</param>
/// <param name="StaleRoutingFlips">Of those, the tokens older versions generated.</param>
/// <param name="Seconds">Wall time of the update.</param>
internal sealed record UpdateStats(double Loss, double GradNorm, double GradNormMax, double ClipFraction,
    MismatchDiagnostics Diagnostics, MismatchDiagnostics Current, MismatchDiagnostics Stale, double EntropySum,
    double SampledLogProbSum, double RewardSum, double RewardSquares, long Responses, long Malformed,
    double[] Staleness, double[] RoutingFlips, double[] StaleRoutingFlips, double Seconds);

/// <summary>
/// One RL step's policy update: rewards, group advantages, then <see cref="GrpoOptions.PpoEpochs"/> passes over the
/// responses in <see cref="GrpoOptions.MiniBatches"/> mini-batches (split in order), each an optimizer step of the
/// PaRO engine. log π_θ_old is the policy before the first of them: with one step it is that step's own forward
/// (detached, so the PPO ratio is exactly 1); with more, a copy of the trainer's weights in the same numerics scores
/// every mini-batch before the first update, and the ratio moves as the updates go. k = π_train(θ_old) / π_infer
/// compares that with what the engine recorded, and the mismatch diagnostics are taken there.
/// </summary>
internal sealed class PolicyUpdate(ShardedTrainer trainer, VerifiableTask task, TaskTokens tokens, RlTrainOptions o,
    IModelConfig config, CausalLanguageModel? reference, long budgetPerRank) : IDisposable
{
    /// <summary>Staleness histogram bins: responses whose oldest token is 0, 1, ... versions behind (the last bin holds
    /// the rest).</summary>
    internal const int StalenessBins = 8;

    private CausalLanguageModel? _old;

    /// <summary>Updates the policy on <paramref name="batch"/>; <paramref name="flat"/> holds θ_old (the trainer's
    /// parameters as the engine last received them) and <paramref name="version"/> its policy version.</summary>
    public UpdateStats Run(RolloutBatch batch, int version, float[] flat)
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var scores = batch.Groups.Select(g => g.Samples.Select(s => task.Judge(g.Problem,
            tokens.Completion(s))).ToList()).ToList();
        var rewards = scores.SelectMany(g => g.Select(s => s.Reward)).ToList();
        var advantages = scores.SelectMany(g => GroupAdvantages.Compute([.. g.Select(s => s.Reward)],
            g.Count)).Select(a => (float)a).ToArray();
        var sequences = batch.Groups.SelectMany(g => g.Samples).ToList();
        var parts = Split(sequences.Count, o.Loss.MiniBatches);
        var temperature = o.Rollout.Sampling.Temperature;
        var flips = new Flips(version);
        var old = o.Loss.Updates > 1 ? ScoreOld(sequences, parts, flat, temperature, flips) : null;
        var diagnostics = new MismatchDiagnostics[parts.Count];
        var (current, stale) = (new MismatchDiagnostics[parts.Count], new MismatchDiagnostics[parts.Count]);
        double entropySum = 0, logProbSum = 0, lossSum = 0, clipped = 0, counted = 0;
        var norms = new List<double>();
        for (var epoch = 0; epoch < o.Loss.PpoEpochs; epoch++)
            for (var m = 0; m < parts.Count; m++)
            {
                var (first, count) = parts[m];
                var (e, part) = (epoch, sequences.GetRange(first, count));
                lossSum += trainer.Step([module =>
                {
                    var policy = (CausalLanguageModel)module;
                    var (logpTrain, logpInfer, valid, entropy) = ResponseScoring.Score(policy, part, temperature,
                        entropyGradient: o.Loss.EntropyCoefficient > 0,
                        eachForward: old is null ? scored => flips.Count(policy, scored) : null);    // [N, T] each
                    Tensor? logpReference = null;
                    if (reference is not null)
                        using (no_grad()) logpReference = ResponseScoring.Score(reference, part, temperature).LogpTrain;
                    var input = new GrpoBatch(logpTrain, old?[m] ?? logpTrain.detach(), logpInfer, valid,
                        tensor(advantages[first..(first + count)]), logpReference, entropy);
                    var (value, d, clip) = GrpoLoss.Compute(input, o.Correction, o.Loss,
                        budgetPerRank / o.Loss.MiniBatches, task.MaxCompletionTokens);
                    (clipped, counted) = (clipped + clip * d.Tokens, counted + d.Tokens);
                    if (e == 0)
                    {
                        diagnostics[m] = d;
                        var fresh = ResponseScoring.GeneratedBy(part, version);                       // [N, T]
                        current[m] = GrpoLoss.DiagnoseWithin(input, o.Correction, fresh);
                        stale[m] = GrpoLoss.DiagnoseWithin(input, o.Correction, ones_like(fresh) - fresh);
                        entropySum += entropy.detach().sum().ToDouble();
                        logProbSum += (logpInfer * valid).sum().ToDouble();
                    }
                    if (policy.LoadBalancingLoss() is not { } balance) return value;
                    // held for the call (TK0001)
                    using var weight = o.LoadBalance.ToScalar();
                    return value + balance * weight;
                }]);
                norms.Add(trainer.GradientNorm());
            }
        var staleness = new double[StalenessBins];
        foreach (var s in sequences) staleness[Math.Min(StalenessBins - 1, version - s.Versions.Min())]++;
        return new UpdateStats(lossSum / norms.Count, norms.Average(), norms.Max(),
            counted > 0 ? clipped / counted : 0, MismatchDiagnostics.Combine(diagnostics),
            MismatchDiagnostics.Combine(current), MismatchDiagnostics.Combine(stale), entropySum, logProbSum,
            rewards.Sum(), rewards.Sum(r => r * r), rewards.Count, scores.Sum(g => g.Count(s => s.IsMalformed)),
            staleness, [.. flips.All.Select(f => (double)f)], [.. flips.Stale.Select(f => (double)f)],
            clock.Elapsed.TotalSeconds);
    }

    /// <summary>Whether a group's rewards differ (dynamic sampling keeps only these).</summary>
    public bool Informative(RolloutGroup group)
    {
        var rewards = group.Samples.Select(s => task.Judge(group.Problem, tokens.Completion(s)).Reward).ToList();
        return rewards.Any(r => r != rewards[0]);
    }

    /// <summary><paramref name="count"/> items in <paramref name="parts"/> runs in order, sizes differing by at most
    /// one (the first ones larger).</summary>
    internal static List<(int First, int Count)> Split(int count, int parts)
    {
        var runs = new List<(int, int)>();
        for (int i = 0, first = 0; i < parts; i++)
        {
            var size = count / parts + (i < count % parts ? 1 : 0);
            runs.Add((first, size));
            first += size;
        }
        return runs;
    }

    /// <summary>log π_θ_old of every mini-batch, scored before any update by a copy of the trainer's weights (fp32,
    /// the trainer's numerics), and the routing flips seen there.</summary>
    private Tensor[] ScoreOld(List<Sequence> sequences, List<(int First, int Count)> parts, float[] flat,
        double temperature, Flips flips)
    {
        using var _ = no_grad();
        Load(flat);
        var scores = new Tensor[parts.Count];
        for (var m = 0; m < parts.Count; m++)
        {
            var part = sequences.GetRange(parts[m].First, parts[m].Count);
            using var inner = NewDisposeScope();
            scores[m] = ResponseScoring.Score(_old!, part, temperature,
                eachForward: scored => flips.Count(_old!, scored)).LogpTrain.MoveToOuterDisposeScope();
        }
        return scores;
    }

    /// <summary>Routing flips per expert layer, summed over mini-batches: of every token, and of the tokens older
    /// versions than <paramref name="version"/> generated.</summary>
    private sealed class Flips(int version)
    {
        public long[] All { get; private set; } = [];
        public long[] Stale { get; private set; } = [];

        public void Count(CausalLanguageModel model, IReadOnlyList<Sequence> part)
        {
            All = Add(All, ResponseScoring.RoutingFlips(model, part));
            Stale = Add(Stale, ResponseScoring.RoutingFlips(model, part, (s, t) => s.Versions[t] != version));
        }

        private static long[] Add(long[] sum, long[] part) =>
            sum.Length == 0 ? part : [.. sum.Zip(part, (a, b) => a + b)];
    }

    private void Load(float[] flat)
    {
        if (_old is null) _old = ModelSource.FromValues(config, flat);
        else ModelSource.Refill(_old, flat);
    }

    /// <inheritdoc/>
    public void Dispose() => _old?.Dispose();
}
