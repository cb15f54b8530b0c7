using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// AdamW on one flat fp32 shard: the optimizer state (first and second moments) exists only for the
/// elements this rank owns. The arithmetic follows TorchSharp's and libtorch's AdamW step element
/// for element, so sharded training can be compared with <c>torch.optim.AdamW</c> on one rank.
/// </summary>
internal sealed class FlatAdamW : IDisposable
{
    private AdamWOptions _options;

    /// <summary>The hyper-parameters; changing them between steps (a new phase, a schedule) keeps the moments.</summary>
    public AdamWOptions Options
    {
        get => _options;
        set => _options = value.Validate();
    }

    public FlatAdamW(long elements, Device device, AdamWOptions options)
    {
        _options = options;
        ExpAvg = zeros(elements, dtype: ScalarType.Float32, device: device);
        ExpAvgSq = zeros(elements, dtype: ScalarType.Float32, device: device);
    }

    public Tensor ExpAvg { get; }
    public Tensor ExpAvgSq { get; }
    public long Step { get; private set; }

    /// <summary>Bytes of optimizer state held (moments only; a master copy is accounted by the caller).</summary>
    public long Bytes => (ExpAvg.numel() + ExpAvgSq.numel()) * sizeof(float);

    /// <summary>One update of <paramref name="parameters"/> (fp32, in place) from the averaged gradient <paramref name="gradient"/>.</summary>
    public void Update(Tensor parameters, Tensor gradient)
    {
        Step++;
        var (lr, beta1, beta2) = (_options.LearningRate, _options.Beta1, _options.Beta2);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var biasCorrection1 = 1 - Math.Pow(beta1, Step);
        var biasCorrection2 = 1 - Math.Pow(beta2, Step);
        // Every number handed to libtorch is held for the step (TK0001: an implicit Scalar may be freed mid-call).
        using var decay = (1 - lr * _options.WeightDecay).ToScalar();
        using var firstWeight = tensor(1 - beta1, dtype: ExpAvg.dtype, device: ExpAvg.device);
        using var beta2Scalar = beta2.ToScalar();
        using var secondWeight = (1 - beta2).ToScalar();
        using var correction2 = Math.Sqrt(biasCorrection2).ToScalar();
        using var epsilon = _options.Epsilon.ToScalar();
        using var stepSize = (-(lr / biasCorrection1)).ToScalar();
        parameters.mul_(decay);
        ExpAvg.lerp_(gradient, firstWeight);                                          // β1·m + (1 − β1)·g in one pass (as torch's AdamW)
        ExpAvgSq.mul_(beta2Scalar).addcmul_(gradient, gradient, value: secondWeight);
        var denominator = ExpAvgSq.sqrt().div_(correction2).add_(epsilon);           // one temporary, updated in place
        parameters.addcdiv_(ExpAvg, denominator, value: stepSize);
    }

    /// <summary>Forgets the moments and the step count (a new training phase starts from a fresh optimizer).</summary>
    public void Reset()
    {
        using var _ = no_grad();
        ExpAvg.zero_();
        ExpAvgSq.zero_();
        Step = 0;
    }

    /// <summary>Sets the step count after the moments were restored from a checkpoint (bias correction depends on it).</summary>
    public void SetStep(long step) => Step = step >= 0 ? step : throw new ArgumentOutOfRangeException(nameof(step), step, "must not be negative");

    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
