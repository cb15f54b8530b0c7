using System.Text.Json.Serialization;
using Toolkit.Options;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>How a step's token losses are averaged.</summary>
public enum LossNormalization
{
    /// <summary>GRPO: 1/G Σ_i 1/|y_i| Σ_t — each response's tokens averaged (masked tokens still counted in |y_i|),
    /// then responses averaged.</summary>
    [JsonStringEnumMemberName("sequence")] Sequence,
    /// <summary>C3PO: the sum over every token divided by the fixed token budget Φ, so a step's weight does not depend
    /// on how many samples it had.</summary>
    [JsonStringEnumMemberName("budget")] Budget,
}

/// <summary>The policy loss's settings besides the correction.</summary>
public sealed record GrpoOptions
{
    /// <summary>PPO clip range ε. Default 0.2.</summary>
    [Option("PPO clip range epsilon.")]
    public double ClipEpsilon { get; init; } = 0.2;

    /// <summary>Weight γ of the KL to the reference policy (k3 estimator). Default 0 (the Ring-1T recipe).</summary>
    [Option("Weight of the KL penalty to the reference (initial) policy; 0 turns it off.")]
    public double KlCoefficient { get; init; }

    /// <summary>sequence (GRPO) or budget (C3PO's 1/Φ). Default sequence.</summary>
    [Option("Loss normalisation: sequence (GRPO's 1/G 1/|y_i|) or budget (C3PO's fixed 1/Phi).")]
    public LossNormalization Normalization { get; init; } = LossNormalization.Sequence;

    /// <summary>Throws naming the first invalid setting.</summary>
    public GrpoOptions Validate()
    {
        if (!(ClipEpsilon > 0 && ClipEpsilon < 1)) throw new ArgumentOutOfRangeException(nameof(ClipEpsilon),
            ClipEpsilon, "must be in (0, 1)");
        if (!(KlCoefficient >= 0)) throw new ArgumentOutOfRangeException(nameof(KlCoefficient), KlCoefficient,
            "must not be negative");
        return this;
    }
}

/// <summary>One batch of responses for the policy loss; every tensor is [B, T] over response tokens (padding where
/// <see cref="Valid"/> is 0), advantages [B].</summary>
/// <param name="LogpNew">log π_θ(y_t) under the parameters being trained (with gradient).</param>
/// <param name="LogpOld">log π_train(y_t | θ_old), no gradient (equal to LogpNew's values on the first update of a
/// batch).</param>
/// <param name="LogpInfer">log π_infer(y_t), as the rollout engine recorded it.</param>
/// <param name="Valid">1 for response tokens, 0 for padding.</param>
/// <param name="Advantages">Group-normalised advantages, one per response.</param>
/// <param name="LogpReference">log π_ref(y_t) for the KL penalty, or null.</param>
/// <param name="Entropy">The trainer's entropy at each position (diagnostics only), or null.</param>
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
    double MaskedFraction, double EntropyMasked, double EntropyKept, long Tokens);

/// <summary>
/// The GRPO objective with a mismatch correction (Ring-1T's J with IcePop's M(k)): J = 1/G Σ_i 1/|y_i| Σ_t M(k_t) ·
/// min(r_t A_i, clip(r_t, 1 − ε, 1 + ε) A_i) − γ KL(π_θ ‖ π_ref), r_t = π_θ / π_θ_old, A_i the
/// group-normalised reward. The loss is −J. With the budget normalisation the double average becomes Σ_i Σ_t (·) /
/// Φ (C3PO).
/// </summary>
internal static class GrpoLoss
{
    /// <summary>The loss (a scalar with gradient through <see cref="GrpoBatch.LogpNew"/>) and the
    /// diagnostics.</summary>
    /// <param name="batch">The responses.</param>
    /// <param name="correction">The mismatch correction.</param>
    /// <param name="options">Clip, KL and normalisation.</param>
    /// <param name="budget">Φ, the token budget, for <see cref="LossNormalization.Budget"/>.</param>
    public static (Tensor Loss, MismatchDiagnostics Diagnostics) Compute(GrpoBatch batch, CorrectionOptions correction,
        GrpoOptions options, long budget = 0)
    {
        using var scope = NewDisposeScope();
        var valid = batch.Valid.to(batch.LogpNew.dtype);                                              // [B, T]
        // [B, T] each, no gradient
        var (weight, kept) = IcePop.Weights(batch.LogpOld, batch.LogpInfer, valid, correction);
        var ratio = (batch.LogpNew - batch.LogpOld.detach()).exp();                                   // [B, T] r_t
        var advantage = batch.Advantages.to(ratio.dtype).unsqueeze(1);                                // [B, 1]
        // held for the call (TK0001)
        using var low = (1 - options.ClipEpsilon).ToScalar();
        using var high = (1 + options.ClipEpsilon).ToScalar();
        var surrogate = minimum(ratio * advantage, ratio.clamp(low, high) * advantage);              // [B, T]
        // [B, T], 0 on masked and padding tokens
        var perToken = -(weight * surrogate);
        if (batch.LogpReference is { } reference && options.KlCoefficient > 0)
        {
            var delta = (reference.detach() - batch.LogpNew) * valid;                                 // [B, T]
            // held for the calls (TK0001)
            using var coefficient = options.KlCoefficient.ToScalar();
            using var one = 1.ToScalar();
            // k3 of KL(π_θ ‖ π_ref)
            perToken = perToken + (delta.exp() - one - delta) * valid * coefficient;
        }
        var loss = Normalize(perToken, valid, options.Normalization, budget);
        var diagnostics = Diagnose(batch, valid, kept, correction);
        return (loss.MoveToOuterDisposeScope(), diagnostics);
    }

    /// <summary>The average the objective uses; masked tokens stay in the counts.</summary>
    internal static Tensor Normalize(Tensor perToken, Tensor valid, LossNormalization normalization, long budget)
    {
        if (normalization == LossNormalization.Budget)
        {
            if (budget <= 0) throw new ArgumentOutOfRangeException(nameof(budget), budget,
                "the budget normalisation needs the token budget Phi");
            // held for the call (TK0001)
            using var phi = budget.ToScalar();
            return perToken.sum() / phi;
        }
        // held for the call (TK0001)
        using var one = 1.ToScalar();
        // [B] |y_i|, masked tokens included
        var lengths = valid.sum(1).clamp_min(one);
        return (perToken.sum(1) / lengths).mean();
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
