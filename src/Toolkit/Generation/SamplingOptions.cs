using Toolkit.Options;

namespace Toolkit.Generation;

/// <summary>How tokens are drawn from the model's distribution.</summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature (1: the model's own distribution, the RL recipe's choice; 0: greedy). Default
    /// 1.</summary>
    [Option("Sampling temperature (1: the policy's own distribution; 0: greedy, the most likely token).")]
    public double Temperature { get; init; } = 1.0;

    /// <summary>Nucleus sampling: draw from the smallest set of tokens whose probability reaches this. Default 1 (all
    /// tokens).</summary>
    [Option("Nucleus (top-p) sampling threshold; 1 samples from every token.")]
    public double TopP { get; init; } = 1.0;

    /// <summary>Throws naming the first invalid setting.</summary>
    public SamplingOptions Validate()
    {
        if (!(Temperature >= 0)) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature,
            "must not be negative (0: greedy)");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "must be in (0, 1]");
        return this;
    }
}
