using Toolkit.Generation;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Tests.Generation;

/// <summary>FP8 E4M3 rounding against values worked out by hand and against libtorch's own float8_e4m3fn
/// conversion, and the scaled quantization FP8 serving applies.</summary>
public sealed class E4M3Tests
{
    public E4M3Tests() => TorchRuntime.EnsureInitialized();

    /// <summary>0.1 lies between 0.09375 and 0.1015625 (steps of 2^-7 in [2^-4, 2^-3)) and is nearer the second;
    /// 1.0625 and 1.1875 are ties between neighbours 1/8 apart and go to the even mantissa (1 and 1.25); 3.3 → 3.25
    /// (steps of 1/4); 447 → 448 and 500 saturates at 448; 0.001 → 2^-9 (the smallest subnormal); 2^-10 is a tie
    /// between 0 and 2^-9 and goes to 0.</summary>
    [Fact]
    public void Round_GivesTheNearestE4M3Value_TiesToEven_Saturating()
    {
        double[] input = [0.1, 1.0, 1.0625, 1.1875, -3.3, 447, 500, -1000, 0.001, Math.Pow(2, -10), 0];
        double[] expected = [0.1015625, 1.0, 1.0, 1.25, -3.25, 448, 448, -448, Math.Pow(2, -9), 0, 0];
        using var x = tensor(input, dtype: ScalarType.Float32);
        using var rounded = E4M3.Round(x);
        Assert.Equal(expected.Select(v => (float)v), rounded.data<float>().ToArray());
    }

    /// <summary>libtorch converts to float8_e4m3fn (dtype code 24; TorchSharp 0.107 has no name for it) by the same
    /// rule: 20,000 values across the format's range agree bit for bit.</summary>
    [Fact]
    public void Round_AgreesWithLibtorchsFloat8Conversion()
    {
        const ScalarType Float8E4M3 = (ScalarType)24;
        using var scope = NewDisposeScope();
        using var generator = new Generator(5);
        using var spread = 14.ToScalar();                                             // held for the calls (TK0001)
        using var shift = 10.ToScalar();
        using var width = 27.ToScalar();
        using var one = 1.ToScalar();
        using var max = 448.ToScalar();
        using var half = 0.5.ToScalar();
        // magnitudes 2^-10 .. 2^4 times [1, 28): below the subnormals up to the saturation point
        var magnitudes = (rand(20_000, generator: generator) * spread - shift).exp2()
            * (rand(20_000, generator: generator) * width + one);
        var x = magnitudes.clamp_max(max) * (rand(20_000, generator: generator) - half).sign();
        var libtorch = x.to(Float8E4M3).to(ScalarType.Float32).data<float>().ToArray();
        var ours = E4M3.Round(x).data<float>().ToArray();
        var differ = Enumerable.Range(0, ours.Length).Where(i => ours[i] != libtorch[i]).ToList();
        Assert.True(differ.Count == 0, $"{differ.Count} differ, e.g. x = {x[differ.FirstOrDefault()].item<float>()}: " +
            $"{ours[differ.FirstOrDefault()]} vs libtorch {libtorch[differ.FirstOrDefault()]}");
    }

    /// <summary>Per-row scales map each row's largest magnitude to 448 (kept exactly); every value lands within half
    /// an E4M3 step (2^-4 relative) of itself, or within half the smallest subnormal step of 0.</summary>
    [Fact]
    public void Quantize_PerRow_KeepsEachRowsLargestValue_AndEveryValueClose()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(3);
        var w = randn([8, 64], generator: generator) * tensor(new float[] { 1e-3f, 1, 10, 300, 0.5f, 2, 7, 1e4f })
            .unsqueeze(1);
        var q = E4M3.Quantize(w, dimension: 1);
        Assert.Equal(w.abs().amax([1]).data<float>().ToArray(), q.abs().amax([1]).data<float>().ToArray());
        using var max = 448.ToScalar();                                               // held for the call (TK0001)
        var scale = w.abs().amax([1], keepdim: true) / max;
        var error = ((q - w).abs() / scale).data<float>().ToArray();
        var relative = (w / scale).abs().data<float>().ToArray();
        for (var i = 0; i < error.Length; i++)
            Assert.True(error[i] <= Math.Max(relative[i] / 16, Math.Pow(2, -10)) * 1.0001,
                $"element {i}: error {error[i]} at magnitude {relative[i]} (in scale units)");
    }
}
