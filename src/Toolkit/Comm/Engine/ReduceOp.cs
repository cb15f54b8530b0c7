using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Toolkit.Comm;

/// <summary>How a reduction combines the contributions of the ranks.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum,
    /// <summary>Element-wise maximum.</summary>
    Max,
    /// <summary>Element-wise minimum.</summary>
    Min,
}

/// <summary>Element-wise <c>target = op(target, source)</c> for the element types the collectives support.</summary>
internal static class Reduction
{
    /// <summary>The element types a reduction supports; others are rejected before any data moves.</summary>
    public static bool Supports<T>() where T : unmanaged =>
        typeof(T) == typeof(float) || typeof(T) == typeof(double) || typeof(T) == typeof(int) ||
        typeof(T) == typeof(long) || typeof(T) == typeof(BFloat16) || typeof(T) == typeof(Half);

    public static void Apply<T>(Span<T> target, ReadOnlySpan<T> source, ReduceOp op) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) Vectorized(Cast<T, float>(target), Cast<T, float>(source), op);
        else if (typeof(T) == typeof(double)) Vectorized(Cast<T, double>(target), Cast<T, double>(source), op);
        else if (typeof(T) == typeof(int)) Vectorized(Cast<T, int>(target), Cast<T, int>(source), op);
        else if (typeof(T) == typeof(long)) Vectorized(Cast<T, long>(target), Cast<T, long>(source), op);
        else if (typeof(T) == typeof(BFloat16)) BFloat16s(Cast<T, BFloat16>(target), Cast<T, BFloat16>(source), op);
        else if (typeof(T) == typeof(Half)) Halves(Cast<T, Half>(target), Cast<T, Half>(source), op);
        else throw new NotSupportedException(
            $"Reductions over {typeof(T).Name} are not supported; use float, double, int, long, Half or BFloat16.");
    }

    private static Span<TTo> Cast<TFrom,
        TTo>(Span<TFrom> span) where TFrom : unmanaged where TTo : unmanaged => MemoryMarshal.Cast<TFrom, TTo>(span);
    private static ReadOnlySpan<TTo> Cast<TFrom,
        TTo>(ReadOnlySpan<TFrom> span) where TFrom : unmanaged where TTo : unmanaged => MemoryMarshal.Cast<TFrom,
            TTo>(span);

    private static void Vectorized<T>(Span<T> target, ReadOnlySpan<T> source, ReduceOp op) where T : unmanaged,
        System.Numerics.INumber<T>
    {
        switch (op)
        {
            case ReduceOp.Sum: TensorPrimitives.Add(target, source, target); break;
            case ReduceOp.Max: TensorPrimitives.Max(target, source, target); break;
            case ReduceOp.Min: TensorPrimitives.Min(target, source, target); break;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction");
        }
    }

    // bf16 and fp16 are widened to float, combined, and rounded back per element (no delegate calls in the loop).
    private static void BFloat16s(Span<BFloat16> target, ReadOnlySpan<BFloat16> source, ReduceOp op)
    {
        for (var i = 0; i < target.Length; i++) target[i] = (BFloat16)Combine(target[i], source[i], op);
    }

    private static void Halves(Span<Half> target, ReadOnlySpan<Half> source, ReduceOp op)
    {
        for (var i = 0; i < target.Length; i++) target[i] = (Half)Combine((float)target[i], (float)source[i], op);
    }

    private static float Combine(float a, float b, ReduceOp op) => op switch
    {
        ReduceOp.Sum => a + b,
        ReduceOp.Max => MathF.Max(a, b),
        _ => MathF.Min(a, b),
    };
}
