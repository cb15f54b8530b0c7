using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>One batch of responses for the policy loss; every tensor is [B, T] over response tokens (padding where
/// <see cref="Valid"/> is 0), advantages [B].</summary>
/// <param name="LogpNew">log π_θ(y_t) under the parameters being trained (with gradient).</param>
/// <param name="LogpOld">log π_train(y_t | θ_old), no gradient (equal to LogpNew's values on the first update of a
/// batch).</param>
/// <param name="LogpInfer">log π_infer(y_t), as the rollout engine recorded it.</param>
/// <param name="Valid">1 for response tokens, 0 for padding.</param>
/// <param name="Advantages">Group-normalised advantages, one per response.</param>
/// <param name="LogpReference">log π_ref(y_t) for the KL penalty, or null.</param>
/// <param name="Entropy">The trainer's entropy at each position (for the diagnostics, and with gradient for the
/// entropy bonus), or null.</param>
internal sealed record GrpoBatch(Tensor LogpNew, Tensor LogpOld, Tensor LogpInfer, Tensor Valid, Tensor Advantages,
    Tensor? LogpReference = null, Tensor? Entropy = null);

/// <summary>What the loss saw, per step (the IcePop authors' and the community's mismatch diagnostics).</summary>
/// <param name="LogProbDiffMean">Mean |log π_train − log π_infer| over response tokens.</param>
/// <param name="LogProbDiffMax">Largest |log π_train − log π_infer|.</param>
/// <param name="KlInferTrain">k3 estimate of KL(π_infer ‖ π_train): mean of k − 1 − log k over tokens sampled
/// from π_infer.</param>
/// <param name="MaskedFraction">Share of response tokens masked (IcePop, MIS) or truncated (TIS: k &gt; C).</param>
/// <param name="EntropyMasked">Mean trainer entropy of masked tokens (NaN when none).</param>
/// <param name="EntropyKept">Mean trainer entropy of kept tokens.</param>
/// <param name="Tokens">Response tokens in the batch.</param>
internal sealed record MismatchDiagnostics(double LogProbDiffMean, double LogProbDiffMax, double KlInferTrain,
    double MaskedFraction, double EntropyMasked, double EntropyKept, long Tokens)
{
    /// <summary>Several mini-batches' diagnostics as one batch's: token-weighted means, the largest
    /// maximum.</summary>
    public static MismatchDiagnostics Combine(IReadOnlyList<MismatchDiagnostics> parts)
    {
        var tokens = parts.Sum(p => p.Tokens);
        if (parts.Count == 1 || tokens == 0) return parts[0];
        double Mean(Func<MismatchDiagnostics, double> value, Func<MismatchDiagnostics, double> count)
        {
            var n = parts.Sum(count);
            return n > 0 ? parts.Where(p => count(p) > 0).Sum(p => value(p) * count(p)) / n : double.NaN;
        }
        return new(Mean(d => d.LogProbDiffMean, d => d.Tokens), parts.Max(d => d.LogProbDiffMax),
            Mean(d => d.KlInferTrain, d => d.Tokens), parts.Sum(d => d.MaskedFraction * d.Tokens) / tokens,
            Mean(d => d.EntropyMasked, d => d.MaskedFraction * d.Tokens),
            Mean(d => d.EntropyKept, d => (1 - d.MaskedFraction) * d.Tokens), tokens);
    }
}

/// <summary>
/// The GRPO objective with a mismatch correction (Ring-1T's J with IcePop's M(k)): J = agg_t M(k_t) ·
/// min(r_t A_i, clip(r_t, 1 − ε_low, 1 + ε_high) A_i) − γ KL(π_θ ‖ π_ref) + η H(π_θ), r_t = π_θ / π_θ_old, A_i the
/// group-normalised reward, agg the chosen aggregation (GRPO's 1/G Σ_i 1/|y_i| Σ_t by default). The loss is −J.
/// Masked tokens keep their place in every count.
/// </summary>
internal static class GrpoLoss
{
    /// <summary>The loss (a scalar with gradient through <see cref="GrpoBatch.LogpNew"/>, and through
    /// <see cref="GrpoBatch.Entropy"/> for the entropy bonus), the diagnostics, and the clip fraction: the share of
    /// the kept tokens whose clipped term is the smaller one (where the clip binds and the token gives no
    /// gradient).</summary>
    /// <param name="batch">The responses.</param>
    /// <param name="correction">The mismatch correction.</param>
    /// <param name="options">Clip, KL, entropy and aggregation.</param>
    /// <param name="budget">Φ, the token budget, for <see cref="LossAggregation.Budget"/>.</param>
    /// <param name="horizon">T_max, the longest response, for
    /// <see cref="LossAggregation.SeqMeanTokenSumNorm"/>.</param>
    public static (Tensor Loss, MismatchDiagnostics Diagnostics, double ClipFraction) Compute(GrpoBatch batch,
        CorrectionOptions correction, GrpoOptions options, long budget = 0, int horizon = 0)
    {
        using var scope = NewDisposeScope();
        var valid = batch.Valid.to(batch.LogpNew.dtype);                                              // [B, T]
        // [B, T] each, no gradient
        var (weight, kept) = IcePop.Weights(batch.LogpOld, batch.LogpInfer, valid, correction);
        var ratio = (batch.LogpNew - batch.LogpOld.detach()).exp();                                   // [B, T] r_t
        var advantage = batch.Advantages.to(ratio.dtype).unsqueeze(1);                                // [B, 1]
        // held for the call (TK0001)
        using var low = (1 - options.Low).ToScalar();
        using var high = (1 + options.High).ToScalar();
        var unclipped = ratio * advantage;                                                            // [B, T]
        var clipped = ratio.clamp(low, high) * advantage;                                             // [B, T]
        // [B, T], 0 on masked and padding tokens
        var perToken = -(weight * minimum(unclipped, clipped));
        if (batch.LogpReference is { } reference && options.KlCoefficient > 0)
        {
            var delta = (reference.detach() - batch.LogpNew) * valid;                                 // [B, T]
            // held for the calls (TK0001)
            using var coefficient = options.KlCoefficient.ToScalar();
            using var one = 1.ToScalar();
            // k3 of KL(π_θ ‖ π_ref)
            perToken = perToken + (delta.exp() - one - delta) * valid * coefficient;
        }
        var loss = Aggregate(perToken, valid, options.Aggregation, budget, horizon);
        if (options.EntropyCoefficient > 0 && batch.Entropy is { } entropy)
        {
            using var coefficient = options.EntropyCoefficient.ToScalar();                            // held (TK0001)
            loss = loss - Aggregate(entropy * valid, valid, options.Aggregation, budget, horizon) * coefficient;
        }
        double clipFraction;
        using (no_grad())
        {
            var counted = kept.sum().ToDouble();
            clipFraction = counted > 0 ? ((clipped < unclipped).to(valid.dtype) * kept).sum().ToDouble() / counted : 0;
        }
        var diagnostics = Diagnose(batch, valid, kept, correction);
        return (loss.MoveToOuterDisposeScope(), diagnostics, clipFraction);
    }

    /// <summary>One number from per-token values [B, T] by <paramref name="mode"/>; masked tokens stay in the
    /// counts.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The mode needs Φ or T_max and it is not positive.</exception>
    internal static Tensor Aggregate(Tensor perToken, Tensor valid, LossAggregation mode, long budget, int horizon)
    {
        // held for the calls (TK0001)
        using var one = 1.ToScalar();
        switch (mode)
        {
            case LossAggregation.Budget:
                if (budget <= 0) throw new ArgumentOutOfRangeException(nameof(budget), budget,
                    "the budget aggregation needs the token budget Phi");
                using (var phi = budget.ToScalar()) return perToken.sum() / phi;
            case LossAggregation.TokenMean:
                return perToken.sum() / valid.sum().clamp_min(one);
            case LossAggregation.SeqMeanTokenSum:
                return perToken.sum(1).mean();
            case LossAggregation.SeqMeanTokenSumNorm:
                if (horizon <= 0) throw new ArgumentOutOfRangeException(nameof(horizon), horizon,
                    "seq-mean-token-sum-norm needs the longest response T_max");
                using (var t = horizon.ToScalar()) return (perToken.sum(1) / t).mean();
            default:
                // [B] |y_i|, masked tokens included
                return (perToken.sum(1) / valid.sum(1).clamp_min(one)).mean();
        }
    }

    /// <summary>The diagnostics over the response tokens where <paramref name="within"/> [B, T] is 1 (the tokens
    /// one policy version generated, say); which tokens the correction masks is decided over the whole batch.</summary>
    internal static MismatchDiagnostics DiagnoseWithin(GrpoBatch batch, CorrectionOptions correction, Tensor within)
    {
        using var scope = NewDisposeScope();
        var valid = batch.Valid.to(batch.LogpOld.dtype);                                              // [B, T]
        var (_, kept) = IcePop.Weights(batch.LogpOld, batch.LogpInfer, valid, correction);
        var part = within.to(valid.dtype);
        return Diagnose(batch, valid * part, kept * part, correction);
    }

    private static MismatchDiagnostics Diagnose(GrpoBatch batch, Tensor validTokens, Tensor keptTokens,
        CorrectionOptions correction)
    {
        using var _ = no_grad();
        var valid = validTokens.to(ScalarType.Float64);                                               // [B, T]
        var kept = keptTokens.to(ScalarType.Float64);                                                 // [B, T]
        var tokens = valid.sum().item<double>();
        if (tokens == 0) return new(0, 0, 0, 0, double.NaN, double.NaN, 0);
        var d = (batch.LogpOld - batch.LogpInfer).to(ScalarType.Float64) * valid;                    // [B, T] log k
        // held for the calls (TK0001)
        using var low = (-correction.LogRatioClamp).ToScalar();
        using var high = correction.LogRatioClamp.ToScalar();
        using var logCap = Math.Log(correction.Cap).ToScalar();
        using var one = 1.ToScalar();
        var k3 = (d.clamp(low, high).exp() - one - d) * valid;
        var truncated = correction.Correction == Correction.Tis
            ? (d > logCap).to(ScalarType.Float64) * valid : valid - kept;
        double MeanOver(Tensor values,
            Tensor where)
                => where.sum().item<double>() is var n and > 0 ? (values * where).sum().item<double>() / n : double.NaN;
        var entropy = batch.Entropy?.to(ScalarType.Float64);
        return new MismatchDiagnostics(
            d.abs().sum().item<double>() / tokens,
            d.abs().max().item<double>(),
            k3.sum().item<double>() / tokens,
            truncated.sum().item<double>() / tokens,
            entropy is null ? double.NaN : MeanOver(entropy, truncated),
            entropy is null ? double.NaN : MeanOver(entropy, valid - truncated),
            (long)tokens);
    }
}

/// <summary>GRPO's advantages: each response's reward standardised within its group (the responses to one
/// prompt).</summary>
internal static class GroupAdvantages
{
    /// <summary>(r − mean of its group) / (std of its group + 1e-6), population std; groups are consecutive runs of
    /// <paramref name="groupSize"/>.</summary>
    /// <exception cref="ArgumentException">The rewards do not split into whole groups.</exception>
    public static double[] Compute(IReadOnlyList<double> rewards, int groupSize)
    {
        if (groupSize < 1 || rewards.Count % groupSize != 0)
            throw new ArgumentException($"{rewards.Count} rewards do not form groups of {groupSize}.", nameof(rewards));
        var advantages = new double[rewards.Count];
        for (var g = 0; g < rewards.Count; g += groupSize)
        {
            var group = Enumerable.Range(g, groupSize).Select(i => rewards[i]).ToList();
            var mean = group.Average();
            var std = Math.Sqrt(group.Average(r => (r - mean) * (r - mean)));
            for (var i = 0; i < groupSize; i++) advantages[g + i] = (group[i] - mean) / (std + 1e-6);
        }
        return advantages;
    }
}
