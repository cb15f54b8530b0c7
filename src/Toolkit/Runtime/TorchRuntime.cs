using TorchSharp;

namespace Toolkit.Runtime;

/// <summary>
/// The one entry point that makes TorchSharp usable in this process: call <see cref="EnsureInitialized"/> before the
/// first tensor. Every toolkit API that touches TorchSharp calls it; notebooks get it from the kernel extension, MPI
/// workers and the CLI at start-up.
/// </summary>
internal static class TorchRuntime
{
    private static readonly Lock Gate = new();
    private static TorchRuntimeInfo? _info;

    /// <summary>Prepares the native library if needed, initialises the CPU backend and returns what happened.
    /// Idempotent and thread-safe.</summary>
    /// <exception cref="TorchRuntimeException">The native runtime cannot be loaded; the message says why and what to
    /// do.</exception>
    public static TorchRuntimeInfo EnsureInitialized()
    {
        lock (Gate)
        {
            if (_info is not null) return _info;
            var preparation = TorchNativeLoader.Prepare();
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
                using var probe = torch.ones(2).sum();
                _ = probe.item<float>();
            }
            catch (Exception e) when (e is not TorchRuntimeException)
            {
                throw TorchRuntimeException.LoadFailed(preparation, e);
            }
            _info = new TorchRuntimeInfo(
                TorchSharpVersion: typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "unknown",
                LibTorchVersion: torch.__version__,
                NativeLibrary: preparation.NativeLibrary,
                Patched: preparation.Patched,
                Detail: preparation.Reason,
                CacheDirectory: preparation.CacheDirectory,
                FinalizerGuard: preparation.FinalizerGuard);
            return _info;
        }
    }
}

/// <summary>How TorchSharp was loaded in this process.</summary>
/// <param name="TorchSharpVersion">TorchSharp assembly version.</param>
/// <param name="LibTorchVersion">The libtorch version reported by the native library.</param>
/// <param name="NativeLibrary">Path of TorchSharp's original native library.</param>
/// <param name="Patched">True when the C++ runtime compatibility copy was used.</param>
/// <param name="Detail">Why it was or was not patched.</param>
/// <param name="CacheDirectory">Where the patched copy is cached, when patched.</param>
/// <param name="FinalizerGuard">Whether Scalars and tensors freed by the GC's finaliser are deferred (see the toolkit's
/// FinalizerGuard), or why not.</param>
public sealed record TorchRuntimeInfo(string TorchSharpVersion, string LibTorchVersion, string? NativeLibrary,
    bool Patched, string Detail, string? CacheDirectory, string FinalizerGuard);
