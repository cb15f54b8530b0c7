using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>
/// The mismatch corrections of Ring-1T (arXiv 2510.18855, §IcePop) and its comparators, as per-token
/// weights. With k_t = π_train(y_t | θ_old) / π_infer(y_t | θ_old) (a constant: no gradient flows through it):
/// <list type="bullet">
/// <item>IcePop: M(k) = k if α ≤ k ≤ β, else 0 (double-sided mask; defaults α = 0.5, β = 5);</item>
/// <item>TIS: min(k, C);</item>
/// <item>MIS: k if k ≤ C, else 0, per token or with the sequence's ratio Π_t k_t for all its tokens;</item>
/// <item>none: 1.</item>
/// </list>
/// The band test happens in log space (log α ≤ log k ≤ log β, so a probability that underflows cannot
/// turn into a 0/0), and log k is clamped before it is exponentiated. A masked token keeps its place in
/// the loss's normaliser (<see cref="GrpoLoss"/>): masking must not inflate the kept tokens' gradients.
/// </summary>
public static class IcePop
{
    /// <summary>Per-token weights and which tokens are kept.</summary>
    /// <param name="logpTrain">log π_train(y_t | θ_old) [B, T].</param>
    /// <param name="logpInfer">log π_infer(y_t | θ_old), as the rollout engine recorded it [B, T].</param>
    /// <param name="valid">1 for response tokens, 0 for padding [B, T].</param>
    /// <param name="options">The correction.</param>
    /// <returns>Weight [B, T] (0 for masked and padding tokens) and Kept [B, T] (1 for valid tokens not masked), both
    /// without gradient.</returns>
    public static (Tensor Weight, Tensor Kept) Weights(Tensor logpTrain, Tensor logpInfer, Tensor valid,
        CorrectionOptions options)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // The numbers handed to libtorch, held for its calls (TK0001: an implicit Scalar may be freed mid-call).
        using var low = (-options.LogRatioClamp).ToScalar();
        using var high = options.LogRatioClamp.ToScalar();
        using var cap = options.Cap.ToScalar();
        using var logCap = Math.Log(options.Cap).ToScalar();
        using var logAlpha = Math.Log(options.Alpha).ToScalar();
        using var logBeta = Math.Log(options.Beta).ToScalar();
        // [B, T] log k
        var logRatio = (logpTrain - logpInfer).clamp(low, high) * valid;
        // [B, T] k
        var ratio = logRatio.exp();
        var (weight, kept) = options.Correction switch
        {
            Correction.None => (ones_like(ratio), ones_like(ratio)),
            Correction.Tis => (ratio.clamp_max(cap), ones_like(ratio)),
            Correction.IcePop => Band(ratio, logRatio >= logAlpha & logRatio <= logBeta),
            Correction.Mis when options.MisLevel == MisLevel.Token => Band(ratio, logRatio <= logCap),
            _ => SequenceLevel(logRatio, logCap, low, high),
        };
        return ((weight * valid).MoveToOuterDisposeScope(), (kept * valid).MoveToOuterDisposeScope());
    }

    private static (Tensor Weight, Tensor Kept) Band(Tensor ratio, Tensor inside)
    {
        var keep = inside.to(ratio.dtype);
        return (ratio * keep, keep);
    }

    private static (Tensor Weight, Tensor Kept) SequenceLevel(Tensor logRatio, Scalar logCap, Scalar low, Scalar high)
    {
        // [B, 1] log Π k_t
        var sequence = logRatio.sum(1, keepdim: true).clamp(low, high);
        var keep = (sequence <= logCap).to(logRatio.dtype).expand_as(logRatio);                               // [B, T]
        return (sequence.exp().expand_as(logRatio) * keep, keep);
    }
}
