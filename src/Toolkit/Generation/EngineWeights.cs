using System.Diagnostics;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// An inference engine's own copy of a model's weights, by parameter name, in its <see cref="Numerics"/>: loaded from
/// the trainer's parameters (a flat fp32 vector in module order, what a weight sync sends) or from a Hugging Face
/// folder (one tensor at a time), and converted once. Int8 matrices are quantized per output row and kept dequantized
/// in bf16, the compute type of weight-only int8 serving kernels (W8A16): the rounding error adds to bf16's. FP8
/// matrices (<see cref="Numerics.Fp8"/>) are rounded to E4M3 per output row and kept dequantized in fp32, so that
/// <see cref="Linear"/> computes what an FP8 GEMM with fp32 accumulation computes (their <see cref="Bytes"/> are
/// therefore fp32's, not fp8's).
/// </summary>
internal sealed class EngineWeights : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
    private readonly HashSet<string> _fp8 = new(StringComparer.Ordinal);

    private EngineWeights(IModelConfig config, Numerics numerics, Device device, bool routerFp32)
    {
        (Config, Numerics, Device, RouterFp32) = (config, numerics, device, routerFp32);
        ComputeType = numerics switch
        {
            Numerics.Bf16 or Numerics.Int8 or Numerics.Fp8 => ScalarType.BFloat16,
            Numerics.Fp16 => ScalarType.Float16,
                _ => ScalarType.Float32,
        };
    }

    public IModelConfig Config { get; }
    public Numerics Numerics { get; }
    public Device Device { get; }

    /// <summary>The dtype activations and the KV cache use.</summary>
    public ScalarType ComputeType { get; }

    /// <summary>True when the MoE routers are kept and applied in fp32 (as the trainer routes) rather than in the
    /// compute type (as serving engines route).</summary>
    public bool RouterFp32 { get; }

    /// <summary>Loads a flat fp32 parameter vector (module order, <see cref="ModelLayout"/>) into the engine's
    /// numerics.</summary>
    /// <exception cref="ArgumentException">The vector's length is not the model's parameter count.</exception>
    public static EngineWeights FromFlat(IModelConfig config, ReadOnlySpan<float> flat, Numerics numerics,
        Device device, bool routerFp32 = false)
    {
        if (flat.Length != ModelLayout.Count(config))
            throw new ArgumentException(
                $"A {config.ModelType} of this shape has {ModelLayout.Count(config)} parameters; the weights " +
                    $"have {flat.Length}.",
                nameof(flat));
        var weights = new EngineWeights(config, numerics, device, routerFp32);
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
    public static EngineWeights FromFolder(HfModel model, Numerics numerics, Device device, bool routerFp32 = false)
    {
        var weights = new EngineWeights(model.Config, numerics, device, routerFp32);
        foreach (var (name, _) in ModelLayout.Of(model.Config))
        {
            using var scope = NewDisposeScope();
            var stored = model.ReadParameter(name, numerics is Numerics.Int8 or Numerics.Fp8
                || (routerFp32 && IsRouter(name)) ? ScalarType.Float32 : weights.ComputeType);
            weights._tensors[name] = weights.Convert(name, stored).MoveToOuterDisposeScope();
        }
        return weights;
    }

    /// <summary>A weight in the compute dtype.</summary>
    public Tensor this[string name] => _tensors[name];

    /// <summary>A weight, or null when the model has none of that name (a bias of another family).</summary>
    public Tensor? Optional(string name) => _tensors.GetValueOrDefault(name);

    /// <summary>
    /// x Wᵀ + b for the linear layer <paramref name="name"/> (its <c>.weight</c> and optional <c>.bias</c>): in the
    /// compute type, or for an FP8 matrix, x rounded to E4M3 with one dynamic scale, multiplied in fp32, returned in
    /// the compute type.
    /// </summary>
    public Tensor Linear(Tensor x, string name)
    {
        var (weight, bias) = (_tensors[name + ".weight"], _tensors.GetValueOrDefault(name + ".bias"));
        if (!_fp8.Contains(name + ".weight")) return nn.functional.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        return nn.functional.linear(E4M3.Quantize(x), weight, bias?.to(ScalarType.Float32)).to(ComputeType)
            .MoveToOuterDisposeScope();
    }

    /// <summary>The router logits [N, E] of the MoE layer whose router is <paramref name="name"/> (its
    /// <c>.weight</c>): in the compute type, or in fp32 with <see cref="RouterFp32"/>.</summary>
    public Tensor Router(Tensor x, string name)
    {
        var weight = _tensors[name + ".weight"];
        return RouterFp32 ? nn.functional.linear(x.to(ScalarType.Float32), weight) : nn.functional.linear(x, weight);
    }

    /// <summary>Bytes the weights occupy.</summary>
    public long Bytes => _tensors.Values.Sum(t => t.numel() * t.element_size());

    private Tensor Convert(string name, Tensor value)
    {
        if (RouterFp32 && IsRouter(name)) return value.to(ScalarType.Float32).to(Device);
        if (Numerics == Numerics.Fp8 && IsFp8Matrix(name, value))
        {
            _fp8.Add(name);
            return E4M3.Quantize(value, dimension: 1).to(Device);                     // one scale per output row
        }
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

    /// <summary>The matrices FP8 serving quantizes: those of the attention and MLP projections (experts'
    /// included); not embeddings, the output layer, routers or gates.</summary>
    private static bool IsFp8Matrix(string name, Tensor value) =>
        value.dim() == 2 && !Fp8Excluded.Any(part => name.Contains(part, StringComparison.Ordinal));

    /// <summary>An MoE router's weight: the GPT's <c>router.weight</c>, Mixtral's and Qwen2-MoE's
    /// <c>gate.weight</c> (not the shared expert's gate, nor <c>gate_proj</c>).</summary>
    private static bool IsRouter(string name) => name.EndsWith("router.weight", StringComparison.Ordinal)
        || name.EndsWith(".gate.weight", StringComparison.Ordinal);

    private static readonly string[] Fp8Excluded =
        ["wte.", "wpe.", "embed_tokens.", "lm_head.", "router.weight", ".gate.weight", "_gate.weight"];

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
