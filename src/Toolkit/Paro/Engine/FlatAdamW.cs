using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// AdamW on one flat fp32 shard: the optimizer state (first and second moments) exists only for the elements this rank
/// owns. The arithmetic is libtorch's AdamW step (the same formula; the fused pass may round the last bit differently:
/// libtorch's kernels use fused multiply-adds), so sharded training can be compared with <c>torch.optim.AdamW</c> on
/// one rank.
/// </summary>
/// <remarks>
/// On the CPU with contiguous fp32 tensors the step is one fused pass (<see cref="FusedStep"/>): each element's
/// gradient is read once and its parameter and moments read and written once, SIMD-wide, on
/// <c>torch.get_num_threads()</c> threads. libtorch's unfused sequence (decay, lerp, mul+addcmul, sqrt, div, add,
/// addcdiv) makes eight passes over the shard and one temporary; TorchSharp exposes no fused AdamW. Elsewhere (CUDA,
/// other dtypes, views with strides) the unfused sequence runs.
/// </remarks>
internal sealed class FlatAdamW : IDisposable
{
    private AdamWOptions _options;

    /// <summary>The hyper-parameters; changing them between steps (a new phase, a schedule) keeps the
    /// moments.</summary>
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

    /// <summary>One update of <paramref name="parameters"/> (fp32, in place) from the averaged gradient
    /// <paramref name="gradient"/>.</summary>
    public void Update(Tensor parameters, Tensor gradient)
    {
        Step++;
        var (lr, beta1, beta2) = (_options.LearningRate, _options.Beta1, _options.Beta2);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var biasCorrection1 = 1 - Math.Pow(beta1, Step);
        var biasCorrection2 = 1 - Math.Pow(beta2, Step);
        if (Fusable(parameters, gradient))
        {
            FusedStep(parameters, gradient, ExpAvg, ExpAvgSq, new FusedConstants(
                Decay: (float)(1 - lr * _options.WeightDecay), FirstWeight: (float)(1 - beta1), Beta2: (float)beta2,
                SecondWeight: (float)(1 - beta2), Correction2: (float)Math.Sqrt(biasCorrection2),
                Epsilon: (float)_options.Epsilon, StepSize: (float)(-(lr / biasCorrection1))));
            return;
        }
        // Every number handed to libtorch is held for the step (TK0001: an implicit Scalar may be freed mid-call).
        using var decay = (1 - lr * _options.WeightDecay).ToScalar();
        using var firstWeight = tensor(1 - beta1, dtype: ExpAvg.dtype, device: ExpAvg.device);
        using var beta2Scalar = beta2.ToScalar();
        using var secondWeight = (1 - beta2).ToScalar();
        using var correction2 = Math.Sqrt(biasCorrection2).ToScalar();
        using var epsilon = _options.Epsilon.ToScalar();
        using var stepSize = (-(lr / biasCorrection1)).ToScalar();
        parameters.mul_(decay);
        // β1·m + (1 − β1)·g in one pass (as torch's AdamW)
        ExpAvg.lerp_(gradient, firstWeight);
        ExpAvgSq.mul_(beta2Scalar).addcmul_(gradient, gradient, value: secondWeight);
        var denominator = ExpAvgSq.sqrt().div_(correction2).add_(epsilon);           // one temporary, updated in place
        parameters.addcdiv_(ExpAvg, denominator, value: stepSize);
    }

    /// <summary>Whether <see cref="FusedStep"/> applies: every tensor fp32, contiguous, on the CPU, of one length. Set
    /// <see cref="ForceUnfused"/> to compare.</summary>
    private bool Fusable(Tensor parameters, Tensor gradient) =>
        !ForceUnfused
        && new[] { parameters, gradient, ExpAvg, ExpAvgSq }.All(t =>
            t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous()
                && t.numel() == ExpAvg.numel())
        && ExpAvg.numel() <= int.MaxValue / sizeof(float);                          // Tensor.bytes is a Span

    /// <summary>Runs libtorch's unfused sequence even where the fused pass applies (tests and benchmarks compare the
    /// two).</summary>
    internal bool ForceUnfused { get; set; }

    /// <summary>The step's numbers, in fp32 as libtorch's CPU kernels use them for fp32 tensors.</summary>
    internal readonly record struct FusedConstants(float Decay, float FirstWeight, float Beta2, float SecondWeight,
        float Correction2, float Epsilon, float StepSize);

    /// <summary>
    /// One pass of p ← p·(1 − lr·λ); m ← m + (1 − β1)(g − m); v ← β2·v + (1 − β2)·g²; p ← p +
    /// s·m / (√v / √(1 − β2ᵗ) + ε) with s = −lr / (1 − β1ᵗ), over chunks of at least 64 Ki elements
    /// on <c>torch.get_num_threads()</c> threads.
    /// </summary>
    private static unsafe void FusedStep(Tensor parameters, Tensor gradient, Tensor expAvg, Tensor expAvgSq,
        FusedConstants c)
    {
        var n = expAvg.numel();
        float* p = Pointer(parameters), g = Pointer(gradient), m = Pointer(expAvg), v = Pointer(expAvgSq);
        const long minimumChunk = 1 << 16;
        var threads = (int)Math.Clamp(Math.Min(get_num_threads(), n / minimumChunk), 1, 64);
        var chunk = (n + threads - 1) / threads;
        // whole vectors per chunk; only the last has a tail
        chunk = (chunk + Vector<float>.Count - 1) / Vector<float>.Count * Vector<float>.Count;
        if (threads == 1)
            Span(p, g, m, v, 0, n, c);
        else
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                t => Span(p, g, m, v, t * chunk, Math.Min(n, (t + 1) * chunk), c));
        // the pointers are their memory: no finaliser may free it mid-pass
        GC.KeepAlive(parameters);
        GC.KeepAlive(gradient);
        GC.KeepAlive(expAvg);
        GC.KeepAlive(expAvgSq);
    }

    /// <summary>The first element of a CPU tensor's own memory (native, so it does not move).</summary>
    private static unsafe float* Pointer(Tensor t)
    {
        fixed (byte* first = t.bytes) return (float*)first;
    }

    private static unsafe void Span(float* p, float* g, float* m, float* v, long from, long to, FusedConstants c)
    {
        var width = Vector<float>.Count;
        var (decay, firstWeight, beta2, secondWeight) = (new Vector<float>(c.Decay), new Vector<float>(c.FirstWeight),
            new Vector<float>(c.Beta2), new Vector<float>(c.SecondWeight));
        var (correction2, epsilon, stepSize) = (new Vector<float>(c.Correction2), new Vector<float>(c.Epsilon),
            new Vector<float>(c.StepSize));
        // libtorch's lerp: start + w·(end − start) when |w| < 0.5, else end − (end − start)·(1 − w).
        var small = MathF.Abs(c.FirstWeight) < 0.5f;
        var (firstRest, firstRestVector) = (1 - c.FirstWeight, new Vector<float>(1 - c.FirstWeight));
        var i = from;
        for (; i + width <= to; i += width)
        {
            var gi = Vector.Load(g + i);
            var mi = Vector.Load(m + i);
            mi = small ? mi + firstWeight * (gi - mi) : gi - (gi - mi) * firstRestVector;
            var vi = Vector.Load(v + i) * beta2 + secondWeight * gi * gi;                // addcmul: v·β2 + (1 − β2)·g·g
            var denominator = Vector.SquareRoot(vi) / correction2 + epsilon;
            var pi = Vector.Load(p + i) * decay;
            (pi + stepSize * mi / denominator).Store(p + i);                            // addcdiv: p + s·m / d
            mi.Store(m + i);
            vi.Store(v + i);
        }
        for (; i < to; i++)
        {
            var gi = g[i];
            var mi = small ? m[i] + c.FirstWeight * (gi - m[i]) : gi - (gi - m[i]) * firstRest;
            var vi = v[i] * c.Beta2 + c.SecondWeight * gi * gi;
            var denominator = MathF.Sqrt(vi) / c.Correction2 + c.Epsilon;
            p[i] = p[i] * c.Decay + c.StepSize * mi / denominator;
            (m[i], v[i]) = (mi, vi);
        }
    }

    /// <summary>Forgets the moments and the step count (a new training phase starts from a fresh optimizer).</summary>
    public void Reset()
    {
        using var _ = no_grad();
        ExpAvg.zero_();
        ExpAvgSq.zero_();
        Step = 0;
    }

    /// <summary>Sets the step count after the moments were restored from a checkpoint (bias correction depends on
    /// it).</summary>
    public void SetStep(long step) => Step = step >= 0 ? step : throw new ArgumentOutOfRangeException(nameof(step),
        step, "must not be negative");

    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
