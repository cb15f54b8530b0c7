using System.Text.Json.Serialization;
using Toolkit.Options;

namespace Toolkit.Rl;

/// <summary>How a mini-batch's token losses become one number (the names are verl's
/// <c>loss_agg_mode</c>).</summary>
public enum LossAggregation
{
    /// <summary>DAPO: the sum over every response token divided by the number of response tokens.</summary>
    [JsonStringEnumMemberName("token-mean")] TokenMean,
    /// <summary>GRPO: each response's tokens averaged, then responses averaged (1/G Σ_i 1/|y_i| Σ_t).</summary>
    [JsonStringEnumMemberName("seq-mean-token-mean")] SeqMeanTokenMean,
    /// <summary>Each response's tokens summed, then responses averaged.</summary>
    [JsonStringEnumMemberName("seq-mean-token-sum")] SeqMeanTokenSum,
    /// <summary>Dr. GRPO: each response's tokens summed and divided by a constant, the task's longest response
    /// T_max, then responses averaged (verl divides the sum over responses by the padded length instead).</summary>
    [JsonStringEnumMemberName("seq-mean-token-sum-norm")] SeqMeanTokenSumNorm,
    /// <summary>C3PO: the sum over every token divided by the fixed token budget Φ (per mini-batch, Φ/M), so a step's
    /// weight does not depend on how many samples it had.</summary>
    [JsonStringEnumMemberName("budget")] Budget,
}

/// <summary>The policy update's settings besides the mismatch correction: the PPO clip, the loss's aggregation and
/// extra terms, and how many optimizer steps each rollout batch gets.</summary>
public sealed record GrpoOptions
{
    /// <summary>PPO clip range ε, both sides unless <see cref="ClipLow"/> or <see cref="ClipHigh"/> is set. Default
    /// 0.2.</summary>
    [Option("PPO clip range epsilon: the ratio is clipped to [1 - eps, 1 + eps] (unless --clip-low or --clip-high " +
        "is given).")]
    public double ClipEpsilon { get; init; } = 0.2;

    /// <summary>Lower clip range: the ratio is clipped below at 1 − ε_low. Default <see cref="ClipEpsilon"/>.</summary>
    [Option("Lower clip range: the ratio is clipped below at 1 - clip-low (default --clip-epsilon).")]
    public double? ClipLow { get; init; }

    /// <summary>Upper clip range: the ratio is clipped above at 1 + ε_high (DAPO's clip-higher: 0.28). Default
    /// <see cref="ClipEpsilon"/>.</summary>
    [Option("Upper clip range: the ratio is clipped above at 1 + clip-high (DAPO's clip-higher uses 0.28; default " +
        "--clip-epsilon).")]
    public double? ClipHigh { get; init; }

    /// <summary>Weight γ of the KL to the reference policy (k3 estimator). Default 0 (the Ring-1T recipe).</summary>
    [Option("Weight of the KL penalty to the reference (initial) policy; 0 turns it off.")]
    public double KlCoefficient { get; init; }

    /// <summary>How token losses are aggregated. Default seq-mean-token-mean (GRPO).</summary>
    [Option("Loss aggregation: token-mean (DAPO), seq-mean-token-mean (GRPO), seq-mean-token-sum, " +
        "seq-mean-token-sum-norm (Dr. GRPO: divided by the task's longest response) or budget (C3PO's 1/Phi).",
        Name = "loss-agg")]
    public LossAggregation Aggregation { get; init; } = LossAggregation.SeqMeanTokenMean;

    /// <summary>Weight of the entropy bonus (the loss subtracts it times the aggregated entropy). Default 0.</summary>
    [Option("Weight of the entropy bonus: the loss subtracts it times the policy's entropy, aggregated like the " +
        "loss (0: none).", Name = "entropy-coeff")]
    public double EntropyCoefficient { get; init; }

    /// <summary>Passes over each rollout batch (PPO epochs). Default 1.</summary>
    [Option("PPO epochs: passes over each rollout batch; above 1 the ratio to the behaviour policy moves and the " +
        "clip binds.")]
    public int PpoEpochs { get; init; } = 1;

    /// <summary>Optimizer steps per pass: the batch split into this many mini-batches. Default 1.</summary>
    [Option("Mini-batches per PPO epoch: each is one optimizer step (the batch's responses split in order).")]
    public int MiniBatches { get; init; } = 1;

    /// <summary>The lower clip range in effect.</summary>
    [JsonIgnore] public double Low => ClipLow ?? ClipEpsilon;

    /// <summary>The upper clip range in effect.</summary>
    [JsonIgnore] public double High => ClipHigh ?? ClipEpsilon;

    /// <summary>Optimizer steps per rollout batch.</summary>
    [JsonIgnore] public int Updates => PpoEpochs * MiniBatches;

    /// <summary>Throws naming the first invalid setting.</summary>
    public GrpoOptions Validate()
    {
        if (!(ClipEpsilon > 0 && ClipEpsilon < 1)) throw new ArgumentOutOfRangeException(nameof(ClipEpsilon),
            ClipEpsilon, "must be in (0, 1)");
        if (ClipLow is { } low && !(low > 0 && low < 1)) throw new ArgumentOutOfRangeException(nameof(ClipLow), low,
            "must be in (0, 1): the ratio's lower bound 1 - clip-low must stay positive");
        if (ClipHigh is { } high && !(high > 0 && double.IsFinite(high)))
            throw new ArgumentOutOfRangeException(nameof(ClipHigh), high, "must be positive");
        if (!(KlCoefficient >= 0)) throw new ArgumentOutOfRangeException(nameof(KlCoefficient), KlCoefficient,
            "must not be negative");
        if (!(EntropyCoefficient >= 0)) throw new ArgumentOutOfRangeException(nameof(EntropyCoefficient),
            EntropyCoefficient, "must not be negative");
        if (PpoEpochs < 1) throw new ArgumentOutOfRangeException(nameof(PpoEpochs), PpoEpochs, "must be at least 1");
        if (MiniBatches < 1) throw new ArgumentOutOfRangeException(nameof(MiniBatches), MiniBatches,
            "must be at least 1");
        return this;
    }
}
