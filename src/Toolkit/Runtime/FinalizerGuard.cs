using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Toolkit.Runtime;

/// <summary>
/// Keeps the GC's finaliser from freeing a TorchSharp <see cref="Scalar"/> or <see cref="torch.Tensor"/> while
/// libtorch may still be reading it: frees that come from the finaliser thread wait <see cref="Grace"/> before they
/// happen.
/// </summary>
/// <remarks>
/// <para>
/// The bug it guards against (TorchSharp 0.107, unfixed upstream): a temporary that nothing references once a native
/// call has read its handle, such as the Scalar a C# number becomes or the tensor of a chained call
/// (<c>p.detach().flatten()</c>), can be collected during that call, and the finaliser thread then frees the native
/// object while libtorch reads it: "INTERNAL ASSERT FAILED at c10/core/Scalar.h" (seen in CI, in an MoE
/// <c>index_add</c>), a wrong number used silently, or a SIGSEGV in <c>libtorch_cpu.so</c> that ends the process
/// (seen in CI: a crash dump put it in <c>THSTensor_flatten</c> on a detached parameter). A DisposeScope does not
/// hold Scalars, and TorchSharp makes such temporaries inside its own methods too (the alpha of <c>Tensor + Tensor</c>,
/// <c>square()</c>, its optimizers), so call sites cannot avoid them all. With a thread collecting in a loop, 8 of
/// 199,600 <c>index_add</c> calls on an unheld Scalar failed in 8 s without the guard and none with it
/// (<c>FinalizerGuardTests</c>); the toolkit's own code also holds its Scalars (analyzer TK0001) and its tensors.
/// </para>
/// <para>
/// How (on Linux, where the loader itself loads LibTorchSharp: see <see cref="TorchNativeLoader"/>): it loads a
/// generated forwarder object (<see cref="ElfShimWriter.BuildForwarder"/>) that depends on <c>libLibTorchSharp.so</c>
/// and defines only <see cref="Functions"/>, as jumps to this class; TorchSharp's P/Invokes resolve
/// <c>LibTorchSharp</c> to the forwarder (<see cref="NativeLibrary.SetDllImportResolver"/>), whose lookup scope finds
/// every other function in the real library. A free on any thread but the finaliser's happens at once (an explicit
/// <c>Dispose</c> comes after the owner's last use); a finaliser's free is queued and done once <see cref="Grace"/>
/// has passed, by a later finalisation or by a timer. Nothing can tell when the native call that read the handle
/// ends, so the grace period is a bound, not a proof: a single libtorch call on a temporary would have to run longer
/// than the grace after the collection. The cost is memory: tensors the GC finds unreferenced are freed up to
/// <see cref="Grace"/> later than they would be.
/// </para>
/// </remarks>
internal static unsafe class FinalizerGuard
{
    /// <summary>The native functions the guard interposes: TorchSharp's frees of a Scalar and of a tensor.</summary>
    internal static readonly IReadOnlyList<string> Functions = [ScalarFree, TensorFree];

    private const string ScalarFree = "THSTorch_dispose_scalar";
    private const string TensorFree = "THSTensor_dispose";

    /// <summary>How long an object freed by the finaliser stays allocated.</summary>
    public static TimeSpan Grace { get; } = TimeSpan.FromSeconds(3);

    private static readonly long GraceTicks = (long)(Grace.TotalSeconds * Stopwatch.Frequency);
    private static readonly Lock Gate = new();
    private static readonly Queue<(IntPtr Handle, bool Tensor, long Due)> Deferred = new();
    private static delegate* unmanaged<IntPtr, void> _freeScalar;
    private static delegate* unmanaged<IntPtr, void> _freeTensor;
    private static Timer? _drain;
    private static int _finalizerThread;
    private static long _deferredScalars;
    private static long _deferredTensors;
    private static long _freedAfterGrace;

    /// <summary>True once TorchSharp's Scalar and tensor frees go through the guard.</summary>
    public static bool Installed { get; private set; }

    /// <summary>Scalars the finaliser has handed over so far.</summary>
    public static long DeferredScalars => Interlocked.Read(ref _deferredScalars);

    /// <summary>Tensors the finaliser has handed over so far.</summary>
    public static long DeferredTensors => Interlocked.Read(ref _deferredTensors);

    /// <summary>Of those, how many have been freed after their grace period.</summary>
    public static long FreedAfterGraceCount => Interlocked.Read(ref _freedAfterGrace);

    /// <summary>
    /// Routes TorchSharp's <c>LibTorchSharp</c> P/Invokes through the forwarder at <paramref name="forwarderPath"/> and
    /// points its <see cref="Functions"/> at the guard. <paramref name="library"/> is the loaded real library. Must run
    /// before TorchSharp's first native call. Returns what it did, for <see cref="TorchRuntimeInfo"/>.
    /// </summary>
    public static string Install(IntPtr library, string forwarderPath)
    {
        FindFinalizerThread();
        if (_finalizerThread == 0) return "not installed: no object was finalised, so the finaliser thread is unknown";
        _freeScalar = (delegate* unmanaged<IntPtr, void>)NativeLibrary.GetExport(library, ScalarFree);
        _freeTensor = (delegate* unmanaged<IntPtr, void>)NativeLibrary.GetExport(library, TensorFree);
        var forwarder = NativeLibrary.Load(forwarderPath);
        *(IntPtr*)NativeLibrary.GetExport(forwarder, ElfShimWriter.SlotSymbol(ScalarFree))
            = (IntPtr)(delegate* unmanaged<IntPtr, void>)&OnScalarFree;
        *(IntPtr*)NativeLibrary.GetExport(forwarder, ElfShimWriter.SlotSymbol(TensorFree))
            = (IntPtr)(delegate* unmanaged<IntPtr, void>)&OnTensorFree;
        _drain = new Timer(_ => Drain(), null, Grace, Grace);
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (name, _, _) =>
            name.Contains("LibTorchSharp", StringComparison.Ordinal) ? forwarder : IntPtr.Zero);
        Installed = true;
        return $"Scalars and tensors freed by the GC's finaliser are freed {Grace.TotalSeconds:0} s later " +
            $"({string.Join(" and ", Functions)} interposed)";
    }

    [UnmanagedCallersOnly]
    private static void OnScalarFree(IntPtr handle) => Free(handle, tensor: false);

    [UnmanagedCallersOnly]
    private static void OnTensorFree(IntPtr handle) => Free(handle, tensor: true);

    private static void Free(IntPtr handle, bool tensor)
    {
        if (Environment.CurrentManagedThreadId != _finalizerThread)
        {
            FreeNow(handle, tensor);
            return;
        }
        if (tensor) Interlocked.Increment(ref _deferredTensors);
        else Interlocked.Increment(ref _deferredScalars);
        lock (Gate) Deferred.Enqueue((handle, tensor, Stopwatch.GetTimestamp() + GraceTicks));
        Drain();
    }

    /// <summary>Frees every queued object whose grace has passed (the finaliser thread and the timer both
    /// call it).</summary>
    private static void Drain()
    {
        var now = Stopwatch.GetTimestamp();
        while (true)
        {
            (IntPtr Handle, bool Tensor, long Due) oldest;
            lock (Gate)
            {
                if (!Deferred.TryPeek(out oldest) || oldest.Due > now) return;
                Deferred.Dequeue();
            }
            FreeNow(oldest.Handle, oldest.Tensor);
            Interlocked.Increment(ref _freedAfterGrace);
        }
    }

    private static void FreeNow(IntPtr handle, bool tensor)
    {
        if (tensor) _freeTensor(handle);
        else _freeScalar(handle);
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
