namespace Toolkit.Paro;

/// <summary>Bytes one rank holds, measured from its buffers.</summary>
/// <param name="ParametersBytes">Parameter slice (level p).</param>
/// <param name="GradientsBytes">Gradient accumulator slice (level g).</param>
/// <param name="OptimizerBytes">Adam moments, plus the fp32 master copy in mixed precision (level os).</param>
/// <param name="PeakTransientBytes">Largest transient allocation of a micro-step: gathered parameters (when p ≠ N)
/// and the full gradient buffer autograd writes into (when g ≠ N; with g = N it accumulates into the gradient slice
/// itself); in layer-wise execution, the largest of the blocks' parameter slots (two, one without prefetch) with: the
/// root's parameters and gradient (around the head); the root's gradient being reduced and one block's (the last
/// block's backward); two blocks' gradients (the other blocks' backward). Activations are not counted.</param>
public sealed record ParoMemory(long ParametersBytes, long GradientsBytes, long OptimizerBytes, long PeakTransientBytes)
{
    /// <summary>Persistent model-state bytes (parameters + gradients + optimizer).</summary>
    public long ModelStateBytes => ParametersBytes + GradientsBytes + OptimizerBytes;

    /// <summary>Model states plus the peak transient.</summary>
    public long PeakBytes => ModelStateBytes + PeakTransientBytes;
}
