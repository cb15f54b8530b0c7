using System.Text.Json.Serialization;

namespace Toolkit.Generation;

/// <summary>
/// The numerics of an inference engine: how it stores weights and computes. Anything but fp32 makes its token
/// probabilities differ from the fp32 trainer's: the train/inference mismatch IcePop corrects.
/// </summary>
public enum Numerics
{
    /// <summary>fp32 weights and compute: the trainer's own numerics (no mismatch beyond kernel order).</summary>
    [JsonStringEnumMemberName("fp32")] Fp32,
    /// <summary>bfloat16 weights, activations and KV cache (8 mantissa bits).</summary>
    [JsonStringEnumMemberName("bf16")] Bf16,
    /// <summary>float16 weights, activations and KV cache (11 mantissa bits, narrow range).</summary>
    [JsonStringEnumMemberName("fp16")] Fp16,
    /// <summary>Weight-only int8 (W8A16): every weight matrix rounded to 8 bits per output row (symmetric, one scale
    /// per row), bf16 activations and KV cache, as weight-only int8 serving kernels compute.</summary>
    [JsonStringEnumMemberName("int8")] Int8,
    /// <summary>FP8 W8A8 (E4M3): the attention and MLP (expert) weight matrices rounded to E4M3 with one scale per
    /// output row, their input activations with one dynamic scale per tensor, products accumulated in fp32;
    /// embeddings, norms, routers and the output layer, activations between layers and the KV cache in bf16, as FP8
    /// serving computes.</summary>
    [JsonStringEnumMemberName("fp8")] Fp8,
}
