using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// Rotary position embeddings (Su et al. 2021) as Hugging Face's Llama computes them: inverse frequencies θ^(−2i/d)
/// (with Llama 3's scaling when configured), angles position × frequency, and each head's halves rotated
/// (<c>rotate_half</c>: x·cos + [−x₂, x₁]·sin), which differs from llama.cpp's adjacent pairs by a permutation
/// of the q and k rows. Shared by the trainer's module and the generation engine.
/// </summary>
internal sealed class Rope
{
    private readonly float[] _inverseFrequencies;   // [d/2]
    private readonly Lock _gate = new();
    private (long Length, DeviceType Device, int Index, ScalarType Type, Tensor Cos, Tensor Sin)? _cached;

    public Rope(DecoderConfig config) => _inverseFrequencies = InverseFrequencies(config);

    /// <summary>θ^(−2i/d) for i in [0, d/2), in fp32 as transformers computes them, then Llama 3's
    /// scaling.</summary>
    public static float[] InverseFrequencies(DecoderConfig config)
    {
        var d = config.HeadDim;
        var frequencies = Enumerable.Range(0, d / 2).Select(i => 1f / MathF.Pow((float)config.RopeTheta,
            2 * i / (float)d)).ToArray();
        if (config.RopeScaling is not { } s) return frequencies;
        var lowWavelength = s.OriginalContext / s.LowFrequencyFactor;
        var highWavelength = s.OriginalContext / s.HighFrequencyFactor;
        return [.. frequencies.Select(f =>
        {
            var wavelength = 2 * Math.PI / f;
            if (wavelength < highWavelength) return f;                                   // high frequencies kept
            if (wavelength > lowWavelength) return (float)(f / s.Factor);                // low frequencies slowed
            var smooth
                = (s.OriginalContext / wavelength - s.LowFrequencyFactor) / (
                    s.HighFrequencyFactor - s.LowFrequencyFactor);
            return (float)((1 - smooth) * f / s.Factor + smooth * f);
        })];
    }

    /// <summary>cos and sin [T, d] for positions 0..T−1 in <paramref name="type"/> (computed in fp32; cached for the
    /// last length).</summary>
    public (Tensor Cos, Tensor Sin) Table(long length, Device device, ScalarType type)
    {
        lock (_gate)
        {
            if (_cached is not { } c || c.Length < length || c.Device != device.type || c.Index != device.index
                || c.Type != type)
            {
                _cached?.Cos.Dispose();
                _cached?.Sin.Dispose();
                using var scope = NewDisposeScope();
                using var end = length.ToScalar();                                       // held for the call (TK0001)
                var (cos, sin) = At(arange(end, dtype: ScalarType.Float32, device: device), device);   // [T, d] each
                _cached = c = (length, device.type, device.index, type, cos.to(type).DetachFromDisposeScope(),
                    sin.to(type).DetachFromDisposeScope());
            }
            return (c.Cos.narrow(0, 0, length), c.Sin.narrow(0, 0, length));     // views in the caller's scope
        }
    }

    /// <summary>cos and sin [N, d] (fp32) at the given positions [N] (float).</summary>
    public (Tensor Cos, Tensor Sin) At(Tensor positions, Device device)
    {
        using var frequencies = tensor(_inverseFrequencies, device: device);          // [d/2]
        var angles = positions.to(ScalarType.Float32).unsqueeze(1) * frequencies.unsqueeze(0);   // [N, d/2]
        var both = cat([angles, angles], 1);                                          // [N, d]
        return (both.cos(), both.sin());
    }

    /// <summary>x·cos + rotate_half(x)·sin for x [..., T, d] and cos, sin broadcastable to it.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }
}
