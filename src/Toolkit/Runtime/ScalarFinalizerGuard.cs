using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Toolkit.Runtime;

/// <summary>
/// Keeps the GC's finaliser from freeing a TorchSharp <see cref="Scalar"/> while libtorch may still be reading it:
/// frees that come from the finaliser thread wait <see cref="Grace"/> before they happen.
/// </summary>
/// <remarks>
/// <para>
/// The bug it guards against (TorchSharp 0.107, unfixed upstream): a number passed where a Scalar is expected becomes a
/// finalisable <see cref="Scalar"/> that nothing references once the native call has read its handle. A garbage
/// collection during that call lets the finaliser thread run <c>THSTorch_dispose_scalar</c> on the handle while
/// libtorch reads it: "INTERNAL ASSERT FAILED at c10/core/Scalar.h" (seen once in CI, in an MoE <c>index_add</c>), or a
/// wrong number used silently. A DisposeScope does not hold Scalars. TorchSharp makes such temporaries inside its own
/// methods too (the alpha of <c>Tensor + Tensor</c>, <c>square()</c>, <c>arange(stop)</c>, every operator taking a C#
/// number, its optimizers), so call sites cannot avoid them all. With a thread collecting in a loop, 8 of 199,600
/// <c>index_add</c> calls failed in 8 s without the guard and none with it (<c>ScalarFinalizerGuardTests</c>); the
/// toolkit's own code also holds its Scalars (analyzer TK0001).
/// </para>
/// <para>
/// How (on Linux, where the loader itself loads LibTorchSharp: see <see cref="TorchNativeLoader"/>): it loads a
/// generated forwarder object (<see cref="ElfShimWriter.BuildForwarder"/>) that depends on <c>libLibTorchSharp.so</c>
/// and defines only <c>THSTorch_dispose_scalar</c>, as a jump to <see cref="Free"/>; TorchSharp's P/Invokes resolve
/// <c>LibTorchSharp</c> to the forwarder (<see cref="NativeLibrary.SetDllImportResolver"/>), whose lookup scope finds
/// every other function in the real library. <see cref="Free"/> frees at once on any thread but the finaliser's (an
/// explicit <c>Dispose</c> comes after the owner's last use); a finaliser's free is queued and done by a later
/// finalisation once <see cref="Grace"/> has passed. Nothing can tell when the native call that read the handle ends,
/// so the grace period is a bound, not a proof: a single libtorch call on a temporary Scalar would have to run longer
/// than 2 s after the collection. The queue holds a couple of seconds' worth of Scalars (tens of bytes each). Tensors
/// are not deferred: the toolkit keeps its tensors in DisposeScopes, and deferring finalised tensors would hold their
/// memory longer.
/// </para>
/// </remarks>
internal static unsafe class ScalarFinalizerGuard
{
    /// <summary>The native function the guard interposes.</summary>
    internal const string Function = "THSTorch_dispose_scalar";

    /// <summary>How long a Scalar freed by the finaliser stays allocated.</summary>
    public static TimeSpan Grace { get; } = TimeSpan.FromSeconds(2);

    private static readonly long GraceTicks = (long)(Grace.TotalSeconds * Stopwatch.Frequency);
    // touched by the finaliser thread only
    private static readonly Queue<(IntPtr Handle, long Due)> Deferred = new();
    private static delegate* unmanaged<IntPtr, void> _free;
    private static int _finalizerThread;
    private static long _deferred;
    private static long _freedAfterGrace;

    /// <summary>True once TorchSharp's Scalar frees go through the guard.</summary>
    public static bool Installed { get; private set; }

    /// <summary>Scalars the finaliser has handed over so far.</summary>
    public static long DeferredCount => Interlocked.Read(ref _deferred);

    /// <summary>Of those, how many have been freed after their grace period.</summary>
    public static long FreedAfterGraceCount => Interlocked.Read(ref _freedAfterGrace);

    /// <summary>
    /// Routes TorchSharp's <c>LibTorchSharp</c> P/Invokes through the forwarder at <paramref name="forwarderPath"/> and
    /// points its <see cref="Function"/> at the guard. <paramref name="library"/> is the loaded real library. Must run
    /// before TorchSharp's first native call. Returns what it did, for <see cref="TorchRuntimeInfo"/>.
    /// </summary>
    public static string Install(IntPtr library, string forwarderPath)
    {
        FindFinalizerThread();
        if (_finalizerThread == 0) return "not installed: no object was finalised, so the finaliser thread is unknown";
        _free = (delegate* unmanaged<IntPtr, void>)NativeLibrary.GetExport(library, Function);
        var forwarder = NativeLibrary.Load(forwarderPath);
        var slot = (IntPtr*)NativeLibrary.GetExport(forwarder, ElfShimWriter.SlotSymbol(Function));
        *slot = (IntPtr)(delegate* unmanaged<IntPtr, void>)&Free;
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (name, _, _) =>
            name.Contains("LibTorchSharp", StringComparison.Ordinal) ? forwarder : IntPtr.Zero);
        Installed = true;
        return $"Scalars freed by the GC's finaliser are freed {Grace.TotalSeconds:0} s later ({Function} interposed)";
    }

    [UnmanagedCallersOnly]
    private static void Free(IntPtr handle)
    {
        if (Environment.CurrentManagedThreadId != _finalizerThread)
        {
            _free(handle);
            return;
        }
        var now = Stopwatch.GetTimestamp();
        while (Deferred.TryPeek(out var oldest) && oldest.Due <= now)
        {
            Deferred.Dequeue();
            _free(oldest.Handle);
            Interlocked.Increment(ref _freedAfterGrace);
        }
        Deferred.Enqueue((handle, now + GraceTicks));
        Interlocked.Increment(ref _deferred);
    }

    /// <summary>Learns the finaliser thread's id from an object it finalises.</summary>
    private static void FindFinalizerThread()
    {
        Abandon();
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Abandon() => _ = new FinalizerProbe();

    private sealed class FinalizerProbe
    {
        ~FinalizerProbe() => _finalizerThread = Environment.CurrentManagedThreadId;
    }
}
