namespace Toolkit.Comm;

/// <summary>
/// The bfloat16 storage format (the upper 16 bits of an IEEE float32), as TorchSharp stores <c>torch.bfloat16</c>
/// tensors. Used to reduce bf16 gradients in collectives: values are widened to float32, combined, and rounded back to
/// nearest-even.
/// </summary>
internal readonly struct BFloat16 : IEquatable<BFloat16>
{
    /// <summary>The raw bits.</summary>
    public ushort Bits { get; }

    private BFloat16(ushort bits) => Bits = bits;

    /// <summary>Reinterprets raw bits.</summary>
    public static BFloat16 FromBits(ushort bits) => new(bits);

    /// <summary>Rounds a float to the nearest bfloat16 (ties to even; NaN stays NaN).</summary>
    public static explicit operator BFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return new BFloat16((ushort)((bits >> 16) | 0x40));
        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return new BFloat16((ushort)((bits + rounding) >> 16));
    }

    /// <summary>Widens to float (exact).</summary>
    public static implicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value.Bits << 16);

    /// <inheritdoc/>
    public bool Equals(BFloat16 other) => Bits == other.Bits;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => Bits;

    /// <inheritdoc/>
    public override string ToString() => ((float)this).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
