using System.Text.Json.Serialization;
using Toolkit.Options;

namespace Toolkit.Rl;

/// <summary>How the loss corrects for the mismatch between the rollout engine's and the trainer's token
/// probabilities.</summary>
public enum Correction
{
    /// <summary>Vanilla GRPO: rollouts are treated as if the trainer had sampled them.</summary>
    [JsonStringEnumMemberName("none")] None,
    /// <summary>Truncated importance sampling: each token weighted by min(k, C).</summary>
    [JsonStringEnumMemberName("tis")] Tis,
    /// <summary>IcePop: tokens whose ratio k leaves [α, β] are masked, the others weighted by k.</summary>
    [JsonStringEnumMemberName("icepop")] IcePop,
    /// <summary>Masked importance sampling: tokens (or whole sequences) whose ratio exceeds C are masked, the others
    /// weighted by it.</summary>
    [JsonStringEnumMemberName("mis")] Mis,
}

/// <summary>Whether MIS judges each token's ratio or the sequence's.</summary>
public enum MisLevel
{
    /// <summary>Each token's own ratio k_t.</summary>
    [JsonStringEnumMemberName("token")] Token,
    /// <summary>The sequence's ratio, the product of its tokens' ratios (the sum of their log-ratios).</summary>
    [JsonStringEnumMemberName("sequence")] Sequence,
}

/// <summary>The mismatch correction and its parameters (Ring-1T §IcePop; defaults from the paper).</summary>
public sealed record CorrectionOptions
{
    /// <summary>none, tis, icepop or mis. Default icepop.</summary>
    [Option("Train/inference mismatch correction: none (vanilla GRPO), tis (weight min(k, C)), icepop (mask k " +
        "outside [alpha, beta]) or mis (mask k > C).")]
    public Correction Correction { get; init; } = Correction.IcePop;

    /// <summary>IcePop's lower band edge α. Default 0.5.</summary>
    [Option("IcePop's lower bound alpha on k = p_train / p_infer.")]
    public double Alpha { get; init; } = 0.5;

    /// <summary>IcePop's upper band edge β. Default 5.</summary>
    [Option("IcePop's upper bound beta on k.")]
    public double Beta { get; init; } = 5;

    /// <summary>The cap C of TIS and MIS. Default 2 (TIS's recipe).</summary>
    [Option("Cap C of TIS (weight min(k, C)) and MIS (mask k > C).")]
    public double Cap { get; init; } = 2;

    /// <summary>Token- or sequence-level MIS. Default token.</summary>
    [Option("MIS level: token or sequence.")]
    public MisLevel MisLevel { get; init; } = MisLevel.Token;

    /// <summary>|log k| is clamped to this before exponentiating, so one wild token cannot overflow. Default
    /// 20.</summary>
    [Option("Clamp of |log k| before it is exponentiated.")]
    public double LogRatioClamp { get; init; } = 20;

    /// <summary>Throws naming the first invalid setting.</summary>
    public CorrectionOptions Validate()
    {
        if (!(Alpha > 0)) throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "must be positive");
        if (!(Beta > Alpha)) throw new ArgumentOutOfRangeException(nameof(Beta), Beta,
            $"must be greater than --alpha ({Alpha}): the band [alpha, beta] would be empty");
        if (!(Cap > 0)) throw new ArgumentOutOfRangeException(nameof(Cap), Cap, "must be positive");
        if (!(LogRatioClamp > 0)) throw new ArgumentOutOfRangeException(nameof(LogRatioClamp), LogRatioClamp,
            "must be positive");
        return this;
    }
}
