using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// An inference engine's own copy of a <see cref="Gpt"/>'s weights, in its <see cref="Numerics"/>: loaded
/// from the trainer's parameters (a flat fp32 vector in module order, what a weight sync sends) and
/// converted once. Int8 matrices are quantized per output row and kept dequantized in bf16, the compute
/// type of weight-only int8 serving kernels (W8A16): the rounding error adds to bf16's.
/// </summary>
internal sealed class GptWeights : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    private GptWeights(GptConfig config, Numerics numerics, Device device)
    {
        (Config, Numerics, Device) = (config, numerics, device);
        ComputeType = numerics switch { Numerics.Bf16 or Numerics.Int8 => ScalarType.BFloat16, Numerics.Fp16 => ScalarType.Float16, _ => ScalarType.Float32 };
    }

    public GptConfig Config { get; }
    public Numerics Numerics { get; }
    public Device Device { get; }

    /// <summary>The dtype activations and the KV cache use.</summary>
    public ScalarType ComputeType { get; }

    /// <summary>Parameter names and shapes of a <see cref="Gpt"/> of <paramref name="config"/>, in module order (the order of a flat parameter vector).</summary>
    public static IReadOnlyList<(string Name, long[] Shape)> Layout(GptConfig config)
    {
        lock (LayoutGate)
        {
            if (Layouts.TryGetValue(config, out var known)) return known;
            using var template = new Gpt(config);
            var layout = template.named_parameters().Select(p => (p.name, p.parameter.shape)).ToList();
            Layouts[config] = layout;
            return layout;
        }
    }

    private static readonly Lock LayoutGate = new();
    private static readonly Dictionary<GptConfig, IReadOnlyList<(string, long[])>> Layouts = [];

    /// <summary>Number of parameters in a flat vector of <paramref name="config"/>.</summary>
    public static long Count(GptConfig config) => Layout(config).Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>Loads a flat fp32 parameter vector (module order) into the engine's numerics.</summary>
    /// <exception cref="ArgumentException">The vector's length is not the model's parameter count.</exception>
    public static GptWeights Load(GptConfig config, ReadOnlySpan<float> flat, Numerics numerics, Device device)
    {
        if (flat.Length != Count(config))
            throw new ArgumentException($"A {config} GPT has {Count(config)} parameters; the weights have {flat.Length}.", nameof(flat));
        var weights = new GptWeights(config, numerics, device);
        using var scope = NewDisposeScope();   // host copies and int8 temporaries die here; the converted weights are kept
        var offset = 0;
        foreach (var (name, shape) in Layout(config))
        {
            var count = (int)shape.Aggregate(1L, (a, b) => a * b);
            var host = tensor(flat.Slice(offset, count).ToArray(), shape);
            weights._tensors[name] = weights.Convert(name, host).to(device).MoveToOuterDisposeScope();
            offset += count;
        }
        return weights;
    }

    /// <summary>A weight in the engine's compute dtype.</summary>
    public Tensor this[string name] => _tensors[name];

    private Tensor Convert(string name, Tensor fp32)
    {
        if (Numerics == Numerics.Int8 && fp32.dim() == 2 && !name.StartsWith("wpe", StringComparison.Ordinal))
        {
            // Symmetric per-row int8: q = round(w / s), s = max|w_row| / 127; dequantized to q * s in the compute type.
            using var tiny = 1e-12.ToScalar();                                        // held for the calls (TK0001)
            using var low = (-127).ToScalar();
            using var high = 127.ToScalar();
            var scale = fp32.abs().amax([1], keepdim: true).clamp_min(tiny) / high;  // [rows, 1]
            var q = (fp32 / scale).round().clamp(low, high);
            return (q * scale).to(ComputeType);
        }
        return fp32.to(ComputeType);
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
