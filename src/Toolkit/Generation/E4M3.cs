using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// The FP8 format serving engines compute in, E4M3 (OCP "E4M3FN": 4 exponent bits, 3 mantissa bits, no infinities):
/// normal values 2^-6 ≤ |x| ≤ 448 with 3 mantissa bits, subnormals in steps of 2^-9 below. Values are held in fp32;
/// rounding to E4M3 is exact arithmetic on them.
/// </summary>
internal static class E4M3
{
    /// <summary>The largest finite value.</summary>
    public const double Max = 448;

    /// <summary>Each value rounded to the nearest E4M3 value (ties to even), saturating at ±448 as scaled FP8
    /// casts do; fp32 in, fp32 out.</summary>
    public static Tensor Round(Tensor x)
    {
        using var scope = NewDisposeScope();
        // held for the calls (TK0001)
        using var max = Max.ToScalar();
        using var smallestNormal = Math.Pow(2, -6).ToScalar();
        using var mantissaBits = 3.ToScalar();
        var magnitude = x.abs().clamp_max(max);
        // the step between neighbours: 2^(e - 3) for the exponent e of a normal value, 2^-9 for subnormals
        var step = (magnitude.clamp_min(smallestNormal).log2().floor() - mantissaBits).exp2();
        var rounded = (magnitude / step).round() * step;
        return (x.sign() * rounded.clamp_max(max)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="x"/> as an FP8 matrix product would see it: divided by one scale (its largest magnitude over
    /// 448, so that value maps to 448), rounded to E4M3, multiplied back; fp32. Per-tensor dynamic scaling, as FP8
    /// serving quantizes activations; <paramref name="dimension"/> gives one scale per slice along it instead (the
    /// weights' per-output-channel scales).
    /// </summary>
    public static Tensor Quantize(Tensor x, long? dimension = null)
    {
        using var scope = NewDisposeScope();
        using var tiny = 1e-30.ToScalar();                                            // held for the calls (TK0001)
        using var max = Max.ToScalar();
        var values = x.to(ScalarType.Float32);
        var amax = dimension is { } d ? values.abs().amax([d], keepdim: true) : values.abs().amax();
        var scale = amax.clamp_min(tiny) / max;
        return (Round(values / scale) * scale).MoveToOuterDisposeScope();
    }
}
