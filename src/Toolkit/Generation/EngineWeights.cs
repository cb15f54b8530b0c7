using System.Diagnostics;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// An inference engine's own copy of a model's weights, by parameter name, in its <see cref="Numerics"/>: loaded from
/// the trainer's parameters (a flat fp32 vector in module order, what a weight sync sends) or from a Hugging Face
/// folder (one tensor at a time), and converted once. Int8 matrices are quantized per output row and kept dequantized
/// in bf16, the compute type of weight-only int8 serving kernels (W8A16): the rounding error adds to bf16's.
/// </summary>
internal sealed class EngineWeights : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    private EngineWeights(IModelConfig config, Numerics numerics, Device device)
    {
        (Config, Numerics, Device) = (config, numerics, device);
        ComputeType = numerics switch
        {
            Numerics.Bf16 or Numerics.Int8 => ScalarType.BFloat16, Numerics.Fp16 => ScalarType.Float16,
                _ => ScalarType.Float32,
        };
    }

    public IModelConfig Config { get; }
    public Numerics Numerics { get; }
    public Device Device { get; }

    /// <summary>The dtype activations and the KV cache use.</summary>
    public ScalarType ComputeType { get; }

    /// <summary>Loads a flat fp32 parameter vector (module order, <see cref="ModelLayout"/>) into the engine's
    /// numerics.</summary>
    /// <exception cref="ArgumentException">The vector's length is not the model's parameter count.</exception>
    public static EngineWeights FromFlat(IModelConfig config, ReadOnlySpan<float> flat, Numerics numerics,
        Device device)
    {
        if (flat.Length != ModelLayout.Count(config))
            throw new ArgumentException(
                $"A {config.ModelType} of this shape has {ModelLayout.Count(config)} parameters; the weights " +
                    $"have {flat.Length}.",
                nameof(flat));
        var weights = new EngineWeights(config, numerics, device);
        foreach (var (name, shape, offset, count) in ModelLayout.Flat(config))
        {
            // the host copy and int8 temporaries die here
            using var scope = NewDisposeScope();
            var values = tensor(flat.Slice((int)offset, (int)count).ToArray(), shape);
            weights._tensors[name] = weights.Convert(name, values).MoveToOuterDisposeScope();
        }
        return weights;
    }

    /// <summary>Loads a Hugging Face folder's weights, one tensor at a time, into the engine's numerics.</summary>
    public static EngineWeights FromFolder(HfModel model, Numerics numerics, Device device)
    {
        var weights = new EngineWeights(model.Config, numerics, device);
        foreach (var (name, _) in ModelLayout.Of(model.Config))
        {
            using var scope = NewDisposeScope();
            var stored = model.ReadParameter(name,
                numerics == Numerics.Int8 ? ScalarType.Float32 : weights.ComputeType);
            weights._tensors[name] = weights.Convert(name, stored).MoveToOuterDisposeScope();
        }
        return weights;
    }

    /// <summary>A weight in the compute dtype.</summary>
    public Tensor this[string name] => _tensors[name];

    /// <summary>A weight, or null when the model has none of that name (a bias of another family).</summary>
    public Tensor? Optional(string name) => _tensors.GetValueOrDefault(name);

    /// <summary>Bytes the weights occupy.</summary>
    public long Bytes => _tensors.Values.Sum(t => t.numel() * t.element_size());

    private Tensor Convert(string name, Tensor value)
    {
        if (Numerics == Numerics.Int8 && value.dim() == 2 && !name.StartsWith("wpe", StringComparison.Ordinal))
        {
            // Symmetric per-row int8: q = round(w / s), s = max|w_row| / 127; dequantized to q * s in the compute type.
            using var tiny = 1e-12.ToScalar();                                        // held for the calls (TK0001)
            using var low = (-127).ToScalar();
            using var high = 127.ToScalar();
            var fp32 = value.to(ScalarType.Float32);
            var scale = fp32.abs().amax([1], keepdim: true).clamp_min(tiny) / high;  // [rows, 1]
            var q = (fp32 / scale).round().clamp(low, high);
            return (q * scale).to(ComputeType).to(Device);
        }
        Debug.Assert(value.dtype == ComputeType || value.dtype == ScalarType.Float32);
        return value.to(ComputeType).to(Device);
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
