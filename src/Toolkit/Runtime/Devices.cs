using TorchSharp;

namespace Toolkit.Runtime;

/// <summary>Chooses the compute device from <c>--device auto|cpu|cuda[:i]</c> and sets CPU thread counts.</summary>
internal static class Devices
{
    /// <summary>The accepted forms of a device option.</summary>
    public const string Grammar = "auto, cpu, cuda or cuda:<index>";

    /// <summary>
    /// Resolves a device spec. <c>auto</c> picks CUDA when TorchSharp's CUDA natives are installed and a GPU answers,
    /// else CPU, and says why.
    /// </summary>
    /// <exception cref="ArgumentException">The spec is malformed, or CUDA was asked for and is not
    /// available.</exception>
    public static DeviceChoice Resolve(string spec)
    {
        TorchRuntime.EnsureInitialized();
        var text = (spec ?? "auto").Trim().ToLowerInvariant();
        if (text == "cpu") return new DeviceChoice(torch.CPU, "cpu", "requested");
        if (text == "auto")
        {
            var (available, why) = CudaStatus();
            return available ? new DeviceChoice(torch.CUDA, "cuda:0", $"auto: {why}") : new DeviceChoice(torch.CPU,
                "cpu", $"auto: {why}");
        }
        if (text == "cuda" || text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            var index = 0;
            if (text.Length > 4 && (!int.TryParse(text[5..], out index) || index < 0))
                throw new ArgumentException($"Invalid device '{spec}': expected {Grammar}.", nameof(spec));
            var (available, why) = CudaStatus();
            if (!available) throw new ArgumentException(
                $"Device '{spec}' was requested but CUDA is not available: {why}. Use --device cpu or auto.",
                    nameof(spec));
            var count = torch.cuda.device_count();
            if (index >= count) throw new ArgumentException(
                $"Device '{spec}' does not exist: this machine has {count} CUDA device(s).", nameof(spec));
            return new DeviceChoice(torch.device(DeviceType.CUDA, index), $"cuda:{index}", "requested");
        }
        throw new ArgumentException($"Invalid device '{spec}': expected {Grammar}.", nameof(spec));
    }

    /// <summary>
    /// Sets libtorch's intra-op threads so that <paramref name="ranksOnHost"/> ranks sharing this machine (threads of
    /// one process, or MPI processes) together use about one thread per core. Returns the thread count per rank.
    /// </summary>
    public static int ConfigureCpuThreads(int ranksOnHost)
    {
        TorchRuntime.EnsureInitialized();
        var threads = Math.Max(1, Environment.ProcessorCount / Math.Max(1, ranksOnHost));
        torch.set_num_threads(threads);
        return threads;
    }

    private static (bool Available, string Why) CudaStatus()
    {
        var dir = TorchNativeLoader.FindLibTorchDirectory(null);
        if (dir is null || !File.Exists(Path.Combine(dir, "libtorch_cuda.so")) && !File.Exists(Path.Combine(dir,
            "torch_cuda.dll")))
            return (false,
                "TorchSharp's CUDA natives are not installed (TorchSharp-cpu); reference TorchSharp-cuda-linux for " +
                    "GPUs");
        try
        {
            return torch.cuda.is_available()
                ? (true, $"CUDA natives present and {torch.cuda.device_count()} GPU(s) visible")
                : (false, "CUDA natives present but no GPU is visible");
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException or DllNotFoundException)
        {
            return (false, $"CUDA natives present but failed to initialise: {e.Message.Split('\n')[0]}");
        }
    }
}

/// <summary>A resolved device.</summary>
/// <param name="Device">The TorchSharp device.</param>
/// <param name="Name">Canonical name (<c>cpu</c>, <c>cuda:0</c>).</param>
/// <param name="Reason">Why it was chosen.</param>
internal sealed record DeviceChoice(torch.Device Device, string Name, string Reason);
