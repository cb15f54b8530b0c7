using Toolkit.Options;

namespace Toolkit.Paro;

/// <summary>AdamW hyper-parameters (Loshchilov and Hutter; the decoupled weight decay of PyTorch's AdamW).</summary>
public sealed record AdamWOptions
{
    /// <summary>Learning rate. Default 1e-3.</summary>
    [Option("AdamW learning rate.", Name = "lr")]
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>First-moment decay. Default 0.9.</summary>
    [Option("AdamW first-moment decay.")]
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Second-moment decay. Default 0.999 (0.95 is common for LLMs).</summary>
    [Option("AdamW second-moment decay (0.95 is common for language models: it forgets stale curvature sooner).")]
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Denominator epsilon. Default 1e-8.</summary>
    [Option("AdamW denominator epsilon.")]
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay. Default 0.01.</summary>
    [Option("AdamW decoupled weight decay.")]
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Clip the averaged gradient to this global L2 norm before the step (0: none). Default 0.</summary>
    [Option("Clip the gradient to this global L2 norm before each optimizer step, as torch's clip_grad_norm_ does " +
        "(0: no clipping).")]
    public double MaxGradNorm { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid value.</summary>
    public AdamWOptions Validate()
    {
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate,
            "must be positive");
        if (Beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "must be in [0, 1)");
        if (Beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "must be in [0, 1)");
        if (!(Epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "must be positive");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay,
            "must not be negative");
        if (!(MaxGradNorm >= 0) || double.IsInfinity(MaxGradNorm))
            throw new ArgumentOutOfRangeException(nameof(MaxGradNorm), MaxGradNorm, "must be finite, 0 or more");
        return this;
    }
}
